"""Signing people in and out of the web pages (docs/decisions/0016).

A session's secret is 256 random bits, handed to the browser once (in a cookie) and
kept here only as its SHA-256, like an API token. A live session stands for its user
exactly as their personal token does: every page checks the user's role afresh.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeGuard

from creditledger.domain.accounts import Principal, Team, TokenKind, normalise_email
from creditledger.domain.errors import NotFound, Unauthenticated
from creditledger.domain.sessions import WebSession, session_expiry
from creditledger.services.accounts import check_login, register
from creditledger.services.context import Context
from creditledger.services.tokens import hash_token

SECRET_BYTES = 32
MAX_SECRET_LENGTH = 100
SIGNED_OUT = "You are signed out: sign in again."


@dataclass(frozen=True, slots=True)
class NewSession:
    secret: str
    """For the cookie only: it is not stored and can not be shown again."""
    session: WebSession


@dataclass(frozen=True, slots=True)
class NewAccount:
    team: Team
    signed_in: NewSession


def sign_in(
    ctx: Context,
    email: str,
    password: str,
    client: str | None = None,
    *,
    replacing: str | None = None,
) -> NewSession:
    """A new session for a correct email and password, throttled like API logins.

    ``replacing`` is the secret of the session the browser still holds, if any: it ends
    as the new one starts (a browser holds one session at a time)."""
    return _start(ctx, check_login(ctx, email, password, client), replacing)


def sign_up(
    ctx: Context,
    email: str,
    password: str,
    team_name: str,
    client: str | None = None,
    *,
    replacing: str | None = None,
) -> NewAccount:
    """A new user and team (as the API's sign-up makes them), already signed in."""
    done = register(ctx, email, password, team_name, client)
    return NewAccount(done.team, _start(ctx, done.user_id, replacing))


def _well_formed(secret: str | None) -> TypeGuard[str]:
    """Could ``secret`` be one of ours? Anything else is not looked up."""
    return secret is not None and 0 < len(secret) <= MAX_SECRET_LENGTH and secret.isascii()


def _start(ctx: Context, user_id: str, replacing: str | None) -> NewSession:
    secret = secrets.token_urlsafe(SECRET_BYTES)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        session = WebSession(
            id=uow.new_id("ses"),
            user_id=user_id,
            created_at=now,
            expires_at=session_expiry(now, timedelta(hours=ctx.settings.web_session_hours)),
        )
        uow.web_sessions.add(session, hash_token(secret))
        if _well_formed(replacing):
            uow.web_sessions.revoke(hash_token(replacing), now)
        uow.commit()
    return NewSession(secret, session)


def session_principal(ctx: Context, secret: str | None, client: str | None = None) -> Principal:
    """Who holds the session ``secret``: ``Unauthenticated`` unless it is live."""
    if not _well_formed(secret):
        raise Unauthenticated(SIGNED_OUT)
    with ctx.uow(write=False) as uow:
        session = uow.web_sessions.find(hash_token(secret))
    if session is None or not session.is_live_at(ctx.clock.now()):
        raise Unauthenticated(SIGNED_OUT)
    return Principal(TokenKind.PERSONAL, session.id, session.user_id, client=client)


def sign_out(ctx: Context, secret: str | None) -> None:
    """End the session ``secret`` if there is one; signing out twice is no error."""
    if not _well_formed(secret):
        return
    with ctx.uow() as uow:
        uow.web_sessions.revoke(hash_token(secret), ctx.clock.now())
        uow.commit()


KEEP_ENDED = timedelta(days=7)
"""How long an ended session's row stays (to tell when someone signed out) before the
``web_sessions`` job forgets it."""


def purge_ended_sessions(ctx: Context) -> int:
    """Delete the sessions that ended more than :data:`KEEP_ENDED` ago; how many."""
    with ctx.uow() as uow:
        gone = uow.web_sessions.delete_ended_before(ctx.clock.now() - KEEP_ENDED)
        uow.commit()
    return gone


def revoke_sessions(ctx: Context, email: str) -> int:
    """End every web session of the user with ``email`` (an operator's command)."""
    email = normalise_email(email)
    with ctx.uow() as uow:
        found = uow.users.find_by_email(email)
        if found is None:
            raise NotFound("No user with this email.", param="email")
        ended = uow.web_sessions.revoke_all_of(found[0], ctx.clock.now())
        uow.commit()
    return ended
