"""API tokens: random, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace

from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.audit import AuditAction
from creditledger.domain.errors import InvalidRequest, Unauthenticated
from creditledger.services import audit
from creditledger.services.access import system_operator
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork

_PREFIX = {TokenKind.PERSONAL: "clp_", TokenKind.OPERATOR: "clo_", TokenKind.SERVICE: "cls_"}


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough; passwords use argon2id.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    uow: UnitOfWork, ctx: Context, kind: TokenKind, user_id: str | None, name: str
) -> str:
    return _issue(uow, ctx, kind, user_id, name)[1]


def _issue(
    uow: UnitOfWork, ctx: Context, kind: TokenKind, user_id: str | None, name: str
) -> tuple[str, str]:
    """(token id, token)."""
    token = _PREFIX[kind] + secrets.token_urlsafe(32)
    token_id = uow.new_id("tok")
    uow.tokens.add(token_id, hash_token(token), kind, user_id, name, ctx.clock.now())
    return token_id, token


def create_platform_token(ctx: Context, kind: TokenKind, name: str) -> str:
    """An operator or service token, made from the command line and printed once.

    The audit log records who got it (never the token itself)."""
    if kind is TokenKind.PERSONAL:
        raise InvalidRequest("Personal tokens come from logging in.", param="kind")
    if not 1 <= len(name) <= 200:
        raise InvalidRequest("`name` must be 1 to 200 characters.", param="name")
    with ctx.uow() as uow:
        token_id, token = _issue(uow, ctx, kind, None, name)
        audit.record(
            uow,
            ctx,
            system_operator("cli"),
            AuditAction.TOKEN_CREATE,
            detail={"token_id": token_id, "kind": kind.value, "name": name},
        )
        uow.commit()
    return token


def authenticate(ctx: Context, token: str | None, client: str | None = None) -> Principal:
    """Who presents ``token``, calling from ``client`` (an address; None when unknown)."""
    if not token or len(token) > 200 or not token.isascii():
        raise Unauthenticated("Send a valid token as `Authorization: Bearer <token>`.")
    with ctx.uow(write=False) as uow:
        principal = uow.tokens.principal_for(hash_token(token))
    if principal is None:
        raise Unauthenticated("This token is unknown or revoked; log in again for a new one.")
    return principal if client is None else replace(principal, client=client)
