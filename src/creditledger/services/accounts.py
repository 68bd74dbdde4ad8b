"""Sign-up, login, teams and members."""

from __future__ import annotations

import weakref
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
    decode_member_cursor,
    encode_member_cursor,
    login_throttled_message,
    normalise_email,
    signup_throttled_message,
)
from creditledger.domain.errors import (
    AlreadyMember,
    InvalidCredentials,
    InvalidRequest,
    LastAdmin,
    NotFound,
)
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.throttle import Budget, Counted, budget_key, digest
from creditledger.services.access import Need, check_team_access, require_user
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.ports import PasswordHasher, UnitOfWork
from creditledger.services.throttle import check_budgets, spend, take
from creditledger.services.tokens import issue_token

# Verifying against this keeps a login for an unknown email as slow as a wrong password.
_DUMMY_HASH_PASSWORD = "not-a-password-of-anyone"  # noqa: S105 - a decoy


@dataclass(frozen=True, slots=True)
class Registered:
    user_id: str
    email: str
    team: Team


@dataclass(frozen=True, slots=True)
class SignUp:
    user_id: str
    email: str
    team: Team
    token: str


def sign_up(
    ctx: Context, email: str, password: str, team_name: str, client: str | None = None
) -> SignUp:
    """:func:`register`, then a personal API token for the new user."""
    done = register(ctx, email, password, team_name, client)
    with ctx.uow() as uow:
        token = issue_token(uow, ctx, TokenKind.PERSONAL, done.user_id, "signup")
        uow.commit()
    return SignUp(done.user_id, done.email, done.team, token)


def register(
    ctx: Context, email: str, password: str, team_name: str, client: str | None = None
) -> Registered:
    """A user and their first team with them as admin, with the sign-up credit.

    ``client`` is the caller's address (None off the network: nothing to throttle).
    Every well-formed attempt from an address counts, "email taken" included.
    """
    email = normalise_email(email)
    check_password(password)
    name = check_team_name(team_name)
    if client is not None:
        budget = Budget(
            Counted.ADDRESS,
            budget_key("signups", Counted.ADDRESS, client),
            ctx.settings.signups_per_address,
            ctx.settings.signup_window_seconds,
        )
        take(ctx, budget, lambda _, wait: signup_throttled_message(wait))
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
        team = uow.teams.get(team_id)
        uow.commit()
    assert team is not None
    return Registered(user_id, email, team)


def log_in(ctx: Context, email: str, password: str, client: str | None = None) -> str:
    """A new personal API token for a correct email and password (:func:`check_login`)."""
    user_id = check_login(ctx, email, password, client)
    with ctx.uow() as uow:
        token = issue_token(uow, ctx, TokenKind.PERSONAL, user_id, "login")
        uow.commit()
    return token


def check_login(ctx: Context, email: str, password: str, client: str | None = None) -> str:
    """The user id of a correct email and password; ``InvalidCredentials`` else.

    Failed attempts are counted per email (whether or not an account has it) and per
    client address; over either budget the attempt is refused before any lookup or
    password check, with the same answer for every email.
    """
    typed = email.strip().lower()
    try:
        email = normalise_email(email)
    except InvalidRequest:
        email = ""
    budgets = _login_budgets(ctx, email or typed, client)
    check_budgets(ctx, budgets, lambda _, wait: login_throttled_message(wait))
    with ctx.uow(write=False) as uow:
        found = uow.users.find_by_email(email) if email else None
    if found is None:
        ctx.passwords.verify(_dummy_hash(ctx.passwords), password)
        spend(ctx, budgets)
        raise InvalidCredentials("The email or password is wrong.")
    user_id, password_hash = found
    if not ctx.passwords.verify(password_hash, password):
        spend(ctx, budgets)
        raise InvalidCredentials("The email or password is wrong.")
    return user_id


_DUMMY_HASHES: weakref.WeakKeyDictionary[PasswordHasher, str] = weakref.WeakKeyDictionary()


def _dummy_hash(passwords: PasswordHasher) -> str:
    """A hash to check an unknown email's password against, made once per hasher, so an
    unknown email costs one password check, as a known one does (no timing tell)."""
    made = _DUMMY_HASHES.get(passwords)
    if made is None:
        made = _DUMMY_HASHES[passwords] = passwords.hash(_DUMMY_HASH_PASSWORD)
    return made


def _login_budgets(ctx: Context, account: str, client: str | None) -> list[Budget]:
    settings = ctx.settings
    window = settings.login_window_seconds
    budgets = [
        Budget(
            Counted.ACCOUNT,
            budget_key("login-failures", Counted.ACCOUNT, digest(account)),
            settings.login_failures_per_account,
            window,
        )
    ]
    if client is not None:
        budgets.append(
            Budget(
                Counted.ADDRESS,
                budget_key("login-failures", Counted.ADDRESS, client),
                settings.login_failures_per_address,
                window,
            )
        )
    return budgets


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


@dataclass(frozen=True, slots=True)
class Me:
    user_id: str
    email: str
    teams: list[tuple[Team, Role]]
    """Every team the user belongs to with their role in it, oldest membership first."""


def get_me(ctx: Context, principal: Principal) -> Me:
    """The caller (a user's personal token) and their teams."""
    user_id = require_user(principal)
    with ctx.uow(write=False) as uow:
        email = uow.users.email_of(user_id)
        teams = uow.members.memberships_of(user_id)
    assert email is not None  # a personal token belongs to a user
    return Me(user_id, email, teams)


def team_admins(ctx: Context, principal: Principal, team_id: str) -> tuple[Team, list[str]]:
    """The team and its admins' emails, for any member: who to ask for Billing."""
    with ctx.uow(write=False) as uow:
        team, _ = check_team_access(uow, principal, team_id, Need.MEMBER)
        admins = [m.email for m in uow.members.in_team(team_id) if m.role is Role.ADMIN]
    return team, admins


@dataclass(frozen=True, slots=True)
class MembersPage:
    members: list[Member]
    next_cursor: str | None


def list_members(
    ctx: Context, principal: Principal, team_id: str, limit: int, cursor: str | None
) -> MembersPage:
    """The team's members (team admins only), in the order they joined."""
    codec = ctx.cursors()
    after = decode_member_cursor(codec, team_id, cursor) if cursor is not None else None
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN)
        rows = uow.members.page(team_id, after, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return MembersPage(page, encode_member_cursor(codec, team_id, page[-1]) if more else None)


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
