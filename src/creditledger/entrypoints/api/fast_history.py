"""``GET /v1/teams/{team_id}/credit-history`` in front of the framework.

A page of history is one read of the database; the framework's routing, dependencies
and middleware cost about as much again as that read. This path takes the plain requests
of the route: ``Authorization: Bearer <token>`` and at most ``limit`` (1 to 500, plain
digits) and ``cursor`` (base64url, up to 200 characters) in the query, each at most
once. Anything else (a filter, another parameter, an escape, a second header) is handed
on to the documented route in ``routes/billing.py``, which answers it with the
framework's validation and errors. The caller comes from the authorizer's memory when it
holds the token; the page is read by :func:`services.history.credit_history` in one hop
to the thread pool, rendered by the route's own ``history_page_json``, and domain errors
go through the same :func:`~creditledger.entrypoints.api.errors.domain_error_response`,
so the answers are the route's (an agreement test sends the same requests both ways).
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from creditledger.domain.accounts import Principal
from creditledger.domain.history import HistoryFilter
from creditledger.entrypoints.api.deps import client_of
from creditledger.entrypoints.api.front import answer
from creditledger.entrypoints.api.schemas import history_page_json
from creditledger.services.authorize import Authorizer
from creditledger.services.context import Context
from creditledger.services.history import HistoryPage, credit_history

ROUTE = "/v1/teams/{team_id}/credit-history"
_PREFIX = "/v1/teams/"
_SUFFIX = "/credit-history"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_LIMIT = re.compile(rb"[1-9][0-9]{0,2}")
_CURSOR = re.compile(rb"[A-Za-z0-9_-]{1,200}")
_TOKEN = re.compile(rb"[\x21-\x7e]{1,200}")
_NO_FILTER = HistoryFilter()


class HistoryFastPath:
    """Answers the plain credit history requests itself and hands every other request
    to ``app``."""

    def __init__(self, app: ASGIApp, ctx: Context, authorizer: Authorizer) -> None:
        self.app = app
        self.ctx = ctx
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = _plain_request(scope) if scope["type"] == "http" else None
        if plain is None:
            await self.app(scope, receive, send)
            return
        token, team_id, limit, cursor = plain
        await answer(
            scope, receive, send, ROUTE, self._answer(scope, token, team_id, limit, cursor)
        )

    async def _answer(
        self, scope: Scope, token: str, team_id: str, limit: int, cursor: str | None
    ) -> bytes:
        client = client_of(scope)
        caller = self.authorizer.known_principal(token, client)
        page = await run_in_threadpool(self._read, caller, token, client, team_id, limit, cursor)
        return history_page_json(page.entries, page.next_cursor)

    def _read(
        self,
        caller: Principal | None,
        token: str,
        client: str | None,
        team_id: str,
        limit: int,
        cursor: str | None,
    ) -> HistoryPage:
        if caller is None:
            caller = self.authorizer.authenticate(token, client)
        return credit_history(self.ctx, caller, team_id, _NO_FILTER, limit, cursor)


def _plain_request(scope: Scope) -> tuple[str, str, int, str | None] | None:
    """(token, team id, limit, cursor) of a request this path takes; None for any other."""
    if scope["method"] != "GET":
        return None
    path: str = scope["path"]
    if not path.startswith(_PREFIX) or not path.endswith(_SUFFIX):
        return None
    team_id = path[len(_PREFIX) : -len(_SUFFIX)]
    if not team_id or "/" in team_id:
        return None
    token = _bearer(scope["headers"])
    query = _query(scope["query_string"])
    if token is None or query is None:
        return None
    return (token, team_id, *query)


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of a single ``Authorization: Bearer <token>`` header; None otherwise."""
    token = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if token is not None or scheme.lower() != b"bearer":
                return None
            if not _TOKEN.fullmatch(credentials):
                return None
            token = credentials.decode()
    return token


def _query(raw: bytes) -> tuple[int, str | None] | None:
    """``limit`` and ``cursor`` when the query holds nothing else, each at most once and
    spelled plainly; None for anything the route should read itself."""
    limit: int | None = None
    cursor: str | None = None
    for part in raw.split(b"&") if raw else ():
        name, equals, value = part.partition(b"=")
        if not equals:
            return None
        if name == b"limit" and limit is None and _LIMIT.fullmatch(value):
            limit = int(value)
            if limit > MAX_LIMIT:
                return None
        elif name == b"cursor" and cursor is None and _CURSOR.fullmatch(value):
            cursor = value.decode()
        else:
            return None
    return (DEFAULT_LIMIT if limit is None else limit), cursor
