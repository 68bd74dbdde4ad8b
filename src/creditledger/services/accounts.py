"""Sign-up, login, teams and members (SPEC §1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from creditledger.domain.accounts import (
    Member,
    Principal,
    Role,
    Team,
    TokenKind,
    admins_left_after,
    check_password,
    check_team_name,
    normalise_email,
)
from creditledger.domain.errors import (
    AlreadyMember,
    InvalidCredentials,
    InvalidRequest,
    LastAdmin,
    NotFound,
)
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.services.access import Need, check_team_access, require_user
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.ports import UnitOfWork
from creditledger.services.tokens import issue_token

# Verifying against this keeps a login for an unknown email as slow as a wrong password.
_DUMMY_HASH_PASSWORD = "not-a-password-of-anyone"  # noqa: S105 - a decoy


@dataclass(frozen=True, slots=True)
class SignUp:
    user_id: str
    email: str
    team: Team
    token: str


def sign_up(ctx: Context, email: str, password: str, team_name: str) -> SignUp:
    """A user, their first team with them as admin, the sign-up credit and a token."""
    email = normalise_email(email)
    check_password(password)
    name = check_team_name(team_name)
    password_hash = ctx.passwords.hash(password)  # slow on purpose: outside the transaction
    with ctx.uow() as uow:
        now = ctx.clock.now()
        user_id = uow.new_id("user")
        uow.users.add(user_id, email, password_hash, now)
        team_id = _create_team(uow, ctx, user_id, name)
        if ctx.settings.signup_credit_nanos > 0:
            signup = NewGrant(
                kind=GrantKind.PROMOTIONAL,
                source=GrantSource.SIGNUP,
                amount=ctx.settings.signup_credit_nanos,
                expires_at=now + timedelta(days=ctx.settings.signup_credit_days),
            )
            issue_grant(uow, ctx, team_id, signup, "Sign-up credit")
        token = issue_token(uow, ctx, TokenKind.PERSONAL, user_id, "signup")
        team = uow.teams.get(team_id)
        uow.commit()
    assert team is not None
    return SignUp(user_id, email, team, token)


def log_in(ctx: Context, email: str, password: str) -> str:
    """A new personal API token for a correct email and password."""
    try:
        email = normalise_email(email)
    except InvalidRequest:
        email = ""
    with ctx.uow(write=False) as uow:
        found = uow.users.find_by_email(email) if email else None
    if found is None:
        ctx.passwords.verify(ctx.passwords.hash(_DUMMY_HASH_PASSWORD), password)
        raise InvalidCredentials("The email or password is wrong.")
    user_id, password_hash = found
    if not ctx.passwords.verify(password_hash, password):
        raise InvalidCredentials("The email or password is wrong.")
    with ctx.uow() as uow:
        token = issue_token(uow, ctx, TokenKind.PERSONAL, user_id, "login")
        uow.commit()
    return token


def _create_team(uow: UnitOfWork, ctx: Context, admin_id: str, name: str) -> str:
    team_id = uow.new_id("team")
    now = ctx.clock.now()
    uow.teams.add(team_id, name, now)
    uow.members.add(team_id, admin_id, Role.ADMIN, now)
    return team_id


def create_team(ctx: Context, principal: Principal, name: str) -> Team:
    """Another team for a user, who becomes its admin. No sign-up credit."""
    user_id = require_user(principal)
    name = check_team_name(name)
    with ctx.uow() as uow:
        team_id = _create_team(uow, ctx, user_id, name)
        team = uow.teams.get(team_id)
        uow.commit()
    assert team is not None
    return team


def get_team(ctx: Context, principal: Principal, team_id: str) -> tuple[Team, Role | None]:
    with ctx.uow(write=False) as uow:
        return check_team_access(uow, principal, team_id, Need.MEMBER)


def add_member(ctx: Context, principal: Principal, team_id: str, email: str, role: Role) -> Member:
    email = normalise_email(email)
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN, lock=True)
        found = uow.users.find_by_email(email)
        if found is None:
            raise NotFound("No user with this email; ask them to sign up first.", param="email")
        user_id = found[0]
        if uow.members.role_of(team_id, user_id) is not None:
            raise AlreadyMember("This user is already a member of the team.", param="email")
        uow.members.add(team_id, user_id, role, ctx.clock.now())
        member = next(m for m in uow.members.in_team(team_id) if m.user_id == user_id)
        uow.commit()
    return member


def change_role(
    ctx: Context, principal: Principal, team_id: str, user_id: str, role: Role
) -> Member:
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN, lock=True)
        members = uow.members.in_team(team_id)
        member = _find_member(members, user_id)
        if admins_left_after(members, user_id, role) == 0:
            raise LastAdmin("A team always keeps one admin; make someone else admin first.")
        uow.members.set_role(team_id, user_id, role)
        uow.commit()
    return Member(member.user_id, member.email, role, member.created_at)


def remove_member(ctx: Context, principal: Principal, team_id: str, user_id: str) -> None:
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN, lock=True)
        members = uow.members.in_team(team_id)
        _find_member(members, user_id)
        if admins_left_after(members, user_id, None) == 0:
            raise LastAdmin("A team always keeps one admin; make someone else admin first.")
        uow.members.remove(team_id, user_id)
        uow.commit()


def _find_member(members: list[Member], user_id: str) -> Member:
    for m in members:
        if m.user_id == user_id:
            return m
    raise NotFound("No member with this id in this team.")
