"""Refuse bodies that are not JSON, not readable or too large, before any route runs."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditledger.domain.errors import CreditLedgerError
from creditledger.entrypoints.api.errors import error_response, status_of
from creditledger.entrypoints.api.json_body import SCOPE_KEY, decode_json

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_FORM_BYTES = 16 * 1024
DECODE_ON_LOOP_BYTES = 64 * 1024
"""Bodies larger than this (usage batches) are decoded in the thread pool, so the
event loop keeps answering authorizations while a batch of 5,000 events is read."""
"""The web pages' forms are a few short fields."""
_JSON_EXEMPT = ("/v1/webhooks/", "/sandbox/")
_FORM = b"application/x-www-form-urlencoded"


class BodyGuard:
    """415 for a body that is not ``application/json``; 413 above ``MAX_BODY_BYTES``;
    400 ``invalid_json`` for one that can not be read, 422 for a key given twice.

    A declared ``Content-Length`` is judged before anything is read; the body is then
    read up to the limit, decoded once by :func:`decode_json`, left in the scope under
    ``SCOPE_KEY`` for routes that take it from there, and handed on in one piece.
    Webhooks and the sandbox checkout form read their own formats (their signature
    covers the raw bytes). The web pages (every path outside ``/v1/``) take
    URL-encoded forms of at most ``MAX_FORM_BYTES``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _too_large(scope, receive, send, MAX_BODY_BYTES)
            return
        path: str = scope["path"]
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = length not in (None, b"0") or b"transfer-encoding" in headers
        if not has_body:
            await self.app(scope, receive, send)
            return
        exempt = path.startswith(_JSON_EXEMPT)
        form = not exempt and not path.startswith("/v1/")
        if form and content_type != _FORM:
            response = error_response(
                415, "unsupported_media_type", "Send the form URL-encoded, as a browser does."
            )
            await response(scope, receive, send)
            return
        if not exempt and not form and content_type != b"application/json":
            response = error_response(
                415,
                "unsupported_media_type",
                "Send the body as JSON (`Content-Type: application/json`).",
            )
            await response(scope, receive, send)
            return
        limit = MAX_FORM_BYTES if form else MAX_BODY_BYTES
        if length is not None and int(length) > limit:
            await _too_large(scope, receive, send, limit)
            return
        exempt = exempt or form
        body = await _read_at_most(receive, limit)
        if body is None:
            await _too_large(scope, receive, send, limit)
            return
        if body and not exempt:
            try:
                if len(body) > DECODE_ON_LOOP_BYTES:  # a usage batch: not on the event loop
                    scope[SCOPE_KEY] = await run_in_threadpool(decode_json, body)
                else:
                    scope[SCOPE_KEY] = decode_json(body)
            except CreditLedgerError as exc:
                await error_response(status_of(exc), exc.code, exc.message, exc.param)(
                    scope, receive, send
                )
                return
        await self.app(scope, replay(body, receive), send)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = error_response(
        413, "payload_too_large", f"Request bodies are limited to {limit} bytes."
    )
    await response(scope, receive, send)


async def _read_at_most(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive, *, more: bool = False) -> Receive:
    """``receive`` with ``body`` put back in front (``more``: the rest is still to come)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return again
