"""Request dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from creditledger.domain.accounts import Principal
from creditledger.domain.throttle import MAX_CLIENT_LENGTH
from creditledger.services.context import Context
from creditledger.services.tokens import authenticate

_bearer = HTTPBearer(auto_error=False, description="A personal, operator or service token")


def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def client_address(request: Request) -> str | None:
    """The caller's address as the server sees it. Behind a proxy, uvicorn's
    ``--proxy-headers`` and ``--forwarded-allow-ips`` decide whether it is the
    proxy's or the one the proxy forwards (docs/decisions/0006)."""
    return request.client.host[:MAX_CLIENT_LENGTH] if request.client else None


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    token = credentials.credentials if credentials else None
    return authenticate(get_context(request), token, client_address(request))


Ctx = Annotated[Context, Depends(get_context)]
Caller = Annotated[Principal, Depends(get_principal)]
ClientAddress = Annotated[str | None, Depends(client_address)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size, 1 to 500")]
Cursor = Annotated[str | None, Query(max_length=200, description="From `next_cursor`")]
IdempotencyKey = Annotated[
    str | None,
    # Documented by ``openapi.idempotency_key`` per route: required or optional there.
    Header(alias="Idempotency-Key", include_in_schema=False),
]
