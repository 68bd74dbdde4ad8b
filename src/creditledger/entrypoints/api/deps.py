"""Request dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from creditledger.domain.accounts import Principal
from creditledger.services.context import Context
from creditledger.services.tokens import authenticate

_bearer = HTTPBearer(auto_error=False, description="A personal, operator or service token")


def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return authenticate(get_context(request), credentials.credentials if credentials else None)


Ctx = Annotated[Context, Depends(get_context)]
Caller = Annotated[Principal, Depends(get_principal)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size, 1 to 500")]
Cursor = Annotated[str | None, Query(max_length=200, description="From `next_cursor`")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Unique per operation, ≤ 255 printable ASCII"),
]
