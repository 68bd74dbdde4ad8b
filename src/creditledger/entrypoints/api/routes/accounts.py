"""Sign-up, login, teams and members."""

from __future__ import annotations

from fastapi import APIRouter, Response

from creditledger.entrypoints.api.deps import Caller, ClientAddress, Ctx, Cursor, Limit
from creditledger.entrypoints.api.openapi import errors
from creditledger.entrypoints.api.schemas import (
    CreatedTeamPublic,
    LoginCreate,
    MemberCreate,
    MemberPage,
    MemberPublic,
    MemberUpdate,
    MePublic,
    MeUserPublic,
    SignupCreate,
    SignupPublic,
    SignupTeamPublic,
    TeamCreate,
    TeamPublic,
    TokenPublic,
    instant,
    me_public,
    member_public,
    team_public,
)
from creditledger.services import accounts

router = APIRouter(prefix="/v1", tags=["accounts"])


@router.post("/signup", status_code=201, responses=errors(409, 429))
def sign_up(body: SignupCreate, ctx: Ctx, client: ClientAddress) -> SignupPublic:
    """Create a user, their first team (the user is its admin) and the sign-up credit.
    Sign-ups are throttled per client address (`too_many_attempts`, 429, `Retry-After`)."""
    done = accounts.sign_up(ctx, body.email, body.password, body.team_name, client)
    return SignupPublic(
        user=MeUserPublic(id=done.user_id, email=done.email),
        team=SignupTeamPublic(
            id=done.team.id, name=done.team.name, created_at=instant(done.team.created_at)
        ),
        token=done.token,
    )


@router.post("/login", responses=errors(401, 429))
def log_in(body: LoginCreate, ctx: Ctx, client: ClientAddress) -> TokenPublic:
    """A new personal API token. Failed logins are throttled per account and per client
    address (`too_many_attempts`, 429, `Retry-After`)."""
    return TokenPublic(token=accounts.log_in(ctx, body.email, body.password, client))


@router.post("/teams", status_code=201)
def create_team(body: TeamCreate, ctx: Ctx, caller: Caller) -> CreatedTeamPublic:
    """A new team; the caller becomes its admin (no sign-up credit)."""
    team = accounts.create_team(ctx, caller, body.name)
    return CreatedTeamPublic(id=team.id, name=team.name)


@router.get("/me")
def get_me(ctx: Ctx, caller: Caller) -> MePublic:
    """The caller (a personal token) and every team they belong to, with their role."""
    return me_public(accounts.get_me(ctx, caller))


@router.get("/teams/{team_id}")
def get_team(team_id: str, ctx: Ctx, caller: Caller) -> TeamPublic:
    team, role = accounts.get_team(ctx, caller, team_id)
    return team_public(team, role)


@router.get("/teams/{team_id}/members")
def list_members(
    team_id: str, ctx: Ctx, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> MemberPage:
    """The team's members (team admins), in the order they were added."""
    result = accounts.list_members(ctx, caller, team_id, limit, cursor)
    return MemberPage(
        data=[member_public(m) for m in result.members], next_cursor=result.next_cursor
    )


@router.post("/teams/{team_id}/members", status_code=201, responses=errors(409))
def add_member(team_id: str, body: MemberCreate, ctx: Ctx, caller: Caller) -> MemberPublic:
    return member_public(accounts.add_member(ctx, caller, team_id, body.email, body.role))


@router.patch("/teams/{team_id}/members/{user_id}", responses=errors(409))
def change_role(
    team_id: str, user_id: str, body: MemberUpdate, ctx: Ctx, caller: Caller
) -> MemberPublic:
    return member_public(accounts.change_role(ctx, caller, team_id, user_id, body.role))


@router.delete("/teams/{team_id}/members/{user_id}", status_code=204, responses=errors(409))
def remove_member(team_id: str, user_id: str, ctx: Ctx, caller: Caller) -> Response:
    accounts.remove_member(ctx, caller, team_id, user_id)
    return Response(status_code=204)
