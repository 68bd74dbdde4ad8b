"""Request dependencies as Annotated aliases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from creditledger.domain.accounts import Principal
from creditledger.domain.throttle import MAX_CLIENT_LENGTH
from creditledger.services.authorize import Authorizer
from creditledger.services.context import Context
from creditledger.services.idempotency import IdempotentRequest, idempotent_request, run_request
from creditledger.services.ports import UnitOfWork
from creditledger.services.tokens import authenticate

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="A personal, operator or service token")


async def get_context(request: Request) -> Context:
    """The application's context (a coroutine: FastAPI would run a plain function in
    the thread pool, one hop per request for a dictionary lookup)."""
    return _context(request)


def _context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def client_address(request: Request) -> str | None:
    """The caller's address as the server sees it. Behind a proxy, uvicorn's
    ``--proxy-headers`` and ``--forwarded-allow-ips`` decide whether it is the
    proxy's or the one the proxy forwards (docs/decisions/0006)."""
    return client_of(request.scope)


def client_of(scope: Scope) -> str | None:
    """:func:`client_address` from the ASGI scope."""
    client = scope.get("client")
    return str(client[0])[:MAX_CLIENT_LENGTH] if client else None


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    token = credentials.credentials if credentials else None
    return authenticate(_context(request), token, client_address(request))


async def get_known_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """:func:`get_principal`, from the authorizer's memory of tokens when it holds this
    one (no read and no thread, as for usage POSTs); otherwise read in the thread pool,
    and then remembered while the authorizer may trust its memory
    (docs/decisions/0023)."""
    token = credentials.credentials if credentials else None
    return await principal_of(request.app.state.authorizer, token, client_address(request))


async def principal_of(authorizer: Authorizer, token: str | None, client: str | None) -> Principal:
    """The token's principal from the authorizer's memory, or read in the thread pool
    (and then remembered while the authorizer may trust its memory)."""
    principal = authorizer.known_principal(token, client)
    if principal is None:
        principal = await run_in_threadpool(authorizer.authenticate, token, client)
    return principal


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The bearer token as sent (a coroutine: no thread-pool hop for a field read)."""
    return credentials.credentials if credentials else None


Ctx = Annotated[Context, Depends(get_context)]
BearerToken = Annotated[str | None, Depends(bearer_token)]
"""The bearer token as sent, for a route that authenticates it itself (authorize)."""
Caller = Annotated[Principal, Depends(get_principal)]
KnownCaller = Annotated[Principal, Depends(get_known_principal)]
"""The caller, authenticated from memory when it can be (:func:`get_known_principal`)."""
ClientAddress = Annotated[str | None, Depends(client_address)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size, 1 to 500")]
Cursor = Annotated[str | None, Query(max_length=200, description="From `next_cursor`")]
IdempotencyKey = Annotated[
    str | None,
    # Documented by ``openapi.idempotency_key`` per route: required or optional there.
    Header(alias="Idempotency-Key", include_in_schema=False),
]


@dataclass(frozen=True, slots=True)
class Idempotent:
    """An idempotent route's caller and checked ``Idempotency-Key``: :meth:`run` makes the
    answer, which a retry with the same key and body gets again, status and body."""

    ctx: Context
    caller: Principal
    request: IdempotentRequest

    def run(
        self,
        body: BaseModel,
        effect: Callable[[UnitOfWork], T],
        render_model: Callable[[T], BaseModel],
        status_code: int = 201,
    ) -> Response:
        """Run ``effect`` once for this key and ``body``, answering ``render_model`` of it."""
        answer = run_request(
            self.ctx,
            self.request,
            body.model_dump_json().encode(),
            effect,
            self.renderer(render_model, status_code),
        )
        return self.respond(answer)

    def call(
        self,
        service: Callable[[IdempotentRequest, Callable[[T], tuple[int, str]]], tuple[int, str]],
        render_model: Callable[[T], BaseModel],
        status_code: int = 201,
    ) -> Response:
        """For a service that runs the key itself (it calls a provider between the claim
        and the answer): ``service(request, render)`` gives the (status, body) to send."""
        return self.respond(service(self.request, self.renderer(render_model, status_code)))

    @staticmethod
    def renderer(
        render_model: Callable[[T], BaseModel], status_code: int
    ) -> Callable[[T], tuple[int, str]]:
        def render(result: T) -> tuple[int, str]:
            return status_code, render_model(result).model_dump_json()

        return render

    @staticmethod
    def respond(answer: tuple[int, str]) -> Response:
        status, content = answer
        return Response(content=content, status_code=status, media_type="application/json")


def _idempotent(*, required: bool) -> Callable[..., Idempotent]:
    def dependency(
        request: Request, ctx: Ctx, caller: Caller, idempotency_key: IdempotencyKey = None
    ) -> Idempotent:
        # The concrete path (ids filled in) and the method identify the request in its
        # fingerprint, together with the body.
        path = request.scope["route"].path_format.format(**request.path_params)
        checked = idempotent_request(
            caller.caller_id, idempotency_key, request.method, path, required=required
        )
        return Idempotent(ctx, caller, checked)

    return dependency


IdempotentRequired = Annotated[Idempotent, Depends(_idempotent(required=True))]
"""The route needs an ``Idempotency-Key`` (document it: ``openapi.idempotency_key``)."""
IdempotentOptional = Annotated[Idempotent, Depends(_idempotent(required=False))]
"""The route takes an ``Idempotency-Key`` if sent; without one it simply runs once."""
