"""API tokens: random, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.errors import InvalidRequest, Unauthenticated
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork

_PREFIX = {TokenKind.PERSONAL: "clp_", TokenKind.OPERATOR: "clo_", TokenKind.SERVICE: "cls_"}


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough; passwords use argon2id.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    uow: UnitOfWork, ctx: Context, kind: TokenKind, user_id: str | None, name: str
) -> str:
    token = _PREFIX[kind] + secrets.token_urlsafe(32)
    uow.tokens.add(uow.new_id("tok"), hash_token(token), kind, user_id, name, ctx.clock.now())
    return token


def create_platform_token(ctx: Context, kind: TokenKind, name: str) -> str:
    """An operator or service token, made from the command line and printed once."""
    if kind is TokenKind.PERSONAL:
        raise InvalidRequest("Personal tokens come from logging in.", param="kind")
    if not 1 <= len(name) <= 200:
        raise InvalidRequest("`name` must be 1 to 200 characters.", param="name")
    with ctx.uow() as uow:
        token = issue_token(uow, ctx, kind, None, name)
        uow.commit()
    return token


def authenticate(ctx: Context, token: str | None) -> Principal:
    if not token or len(token) > 200 or not token.isascii():
        raise Unauthenticated("Send a valid token as `Authorization: Bearer <token>`.")
    with ctx.uow(write=False) as uow:
        principal = uow.tokens.principal_for(hash_token(token))
    if principal is None:
        raise Unauthenticated("This token is unknown or revoked; log in again for a new one.")
    return principal
