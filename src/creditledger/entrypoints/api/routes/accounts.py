"""Sign-up, login, teams and members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from creditledger.entrypoints.api.deps import Caller, Ctx
from creditledger.entrypoints.api.schemas import (
    LoginCreate,
    MemberCreate,
    MemberUpdate,
    SignupCreate,
    TeamCreate,
    iso,
    member_public,
    team_public,
)
from creditledger.services import accounts

router = APIRouter(prefix="/v1", tags=["accounts"])


@router.post("/signup", status_code=201)
def sign_up(body: SignupCreate, ctx: Ctx) -> dict[str, Any]:
    """Create a user, their first team (the user is its admin) and the sign-up credit."""
    done = accounts.sign_up(ctx, body.email, body.password, body.team_name)
    return {
        "user": {"id": done.user_id, "email": done.email},
        "team": {
            "id": done.team.id,
            "name": done.team.name,
            "created_at": iso(done.team.created_at),
        },
        "token": done.token,
    }


@router.post("/login")
def log_in(body: LoginCreate, ctx: Ctx) -> dict[str, Any]:
    """A new personal API token."""
    return {"token": accounts.log_in(ctx, body.email, body.password)}


@router.post("/teams", status_code=201)
def create_team(body: TeamCreate, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    team = accounts.create_team(ctx, caller, body.name)
    return {"id": team.id, "name": team.name}


@router.get("/teams/{team_id}")
def get_team(team_id: str, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    team, role = accounts.get_team(ctx, caller, team_id)
    return team_public(team, role)


@router.post("/teams/{team_id}/members", status_code=201)
def add_member(team_id: str, body: MemberCreate, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    return member_public(accounts.add_member(ctx, caller, team_id, body.email, body.role))


@router.patch("/teams/{team_id}/members/{user_id}")
def change_role(
    team_id: str, user_id: str, body: MemberUpdate, ctx: Ctx, caller: Caller
) -> dict[str, Any]:
    return member_public(accounts.change_role(ctx, caller, team_id, user_id, body.role))


@router.delete("/teams/{team_id}/members/{user_id}", status_code=204)
def remove_member(team_id: str, user_id: str, ctx: Ctx, caller: Caller) -> Response:
    accounts.remove_member(ctx, caller, team_id, user_id)
    return Response(status_code=204)
