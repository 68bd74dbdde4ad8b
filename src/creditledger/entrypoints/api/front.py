"""What the paths in front of the framework share.

A few requests are asked so often (an authorization before every inference request, a
usage report after it, a page of credit history) that the framework's routing,
dependencies and middleware cost more than their work. Each such path takes only the
plainest form of its request (:func:`bearer_json`, :func:`read_body`) and hands every
other one, body and all, to the documented route, so that every refusal of unusual input
stays the framework's. What it answers goes through :func:`answer`: the same JSON, the
same error bodies (:func:`~creditledger.entrypoints.api.errors.domain_error_response`),
the same metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Generic, TypeVar

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from creditledger.domain.errors import CreditLedgerError
from creditledger.entrypoints.api.errors import domain_error_response, error_response
from creditledger.entrypoints.api.limits import replay
from creditledger.entrypoints.api.metrics import observe
from creditledger.services.memo import keep

log = logging.getLogger(__name__)

_JSON_HEADERS = ((b"content-type", b"application/json"),)
MAX_LENGTHS = 1_000
_headers: dict[int, tuple[tuple[bytes, bytes], ...]] = {}
"""An answer's headers by its length (the authorizations' answers come in few lengths)."""

T = TypeVar("T")


class PostInFront(Generic[T]):
    """A ``POST`` route whose plain requests are answered here: a bearer token, a JSON
    body up to ``max_bytes`` that :meth:`decode` reads exactly as the route would. Every
    other request, body and all, goes on to ``app`` (the framework's whole stack)."""

    path: str
    max_bytes: int

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        token = bearer_json(scope["headers"], self.max_bytes)
        if token is None:
            await self.app(scope, receive, send)
            return
        body, complete = await read_body(receive, self.max_bytes)
        decoded = self.decode(body) if complete else None
        if decoded is None:
            await self.app(scope, replay(body, receive, more=not complete), send)
            return
        await self.handle(scope, receive, send, token, decoded)

    def decode(self, body: bytes) -> T | None:
        """The body as the route would read it; None when the route should judge it."""
        raise NotImplementedError

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, token: str, decoded: T
    ) -> None:
        await answer(scope, receive, send, self.path, self.work(scope, token, decoded))

    async def work(self, scope: Scope, token: str, decoded: T) -> bytes:
        """The answer's JSON."""
        raise NotImplementedError


def bearer_json(headers: list[tuple[bytes, bytes]], max_bytes: int) -> str | None:
    """The bearer token of a request with a JSON body of a declared length up to
    ``max_bytes`` and one plain ``Authorization: Bearer <token>``; None for any other.
    Of a header sent twice the last counts, as in the framework, except
    ``Authorization``, which then refuses the request here."""
    named = dict(headers)
    if len(named) != len(headers) and [n for n, _ in headers].count(b"authorization") > 1:
        return None
    if b"transfer-encoding" in named:
        return None
    kind = named.get(b"content-type")
    if kind is None or (
        kind != b"application/json" and kind.split(b";")[0].strip().lower() != b"application/json"
    ):
        return None
    length = named.get(b"content-length", b"")
    if not (length.isdigit() and len(length) < 9 and 0 < int(length) <= max_bytes):
        return None
    value = named.get(b"authorization")
    if value is None:
        return None
    token = _tokens.get(value)
    if token is None:
        token = _bearer(value)
        if token is not None:
            keep(_tokens, value, token, MAX_TOKENS)
    return token


MAX_TOKENS = 1_000
_tokens: dict[bytes, str] = {}
"""Plain ``Authorization`` values already read, and their tokens: a gateway sends the
same few with every request."""


def _bearer(value: bytes) -> str | None:
    """The token of a plain ``Bearer <token>`` header value; None for any other."""
    scheme, _, credentials = value.partition(b" ")
    if scheme.lower() != b"bearer" or not credentials or not credentials.isascii():
        return None
    if b" " in credentials or b"\t" in credentials:
        return None
    return credentials.decode()


async def read_body(receive: Receive, max_bytes: int) -> tuple[bytes, bool]:
    """The body, and whether it is all of it (False once it passes ``max_bytes``)."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if message["type"] != "http.request":
        return body, False
    if not message.get("more_body", False):
        return body, len(body) <= max_bytes
    chunks = [body]
    size = len(body)
    while message.get("more_body", False) and size <= max_bytes:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), size <= max_bytes and not message.get("more_body", False)


async def answer(
    scope: Scope, receive: Receive, send: Send, route: str, work: Awaitable[bytes]
) -> int:
    """Send what ``work`` comes to as a 200 JSON answer, or its error as the framework
    would; count it under ``route`` (the route's template). The status sent."""
    started = time.perf_counter()
    try:
        out = await work
    except CreditLedgerError as exc:
        response: Response = domain_error_response(exc)
    except Exception as exc:  # as the framework's last handler answers it
        log.exception("unhandled error", exc_info=exc)
        response = error_response(500, "internal_error", "Something went wrong on our side.")
    else:
        headers = _headers.get(len(out))
        if headers is None:
            length = (b"content-length", b"%d" % len(out))
            headers = keep(_headers, len(out), (*_JSON_HEADERS, length), MAX_LENGTHS)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})
        observe(scope["method"], route, 200, time.perf_counter() - started)
        return 200
    await response(scope, receive, send)
    observe(scope["method"], route, response.status_code, time.perf_counter() - started)
    return response.status_code
