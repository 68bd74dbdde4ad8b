"""Refuse bodies that are not JSON or are too large, before any parsing."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from creditledger.entrypoints.api.errors import error_response

MAX_BODY_BYTES = 5 * 1024 * 1024
_JSON_EXEMPT = ("/v1/webhooks/", "/sandbox/")


class BodyGuard:
    """415 for a body that is not ``application/json``; 413 above ``MAX_BODY_BYTES``.

    Webhooks and the sandbox checkout form read their own formats.
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
            response = error_response(
                413, "payload_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes."
            )
            await response(scope, receive, send)
            return
        path: str = scope["path"]
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = length not in (None, b"0") or b"transfer-encoding" in headers
        if has_body and content_type != b"application/json" and not path.startswith(_JSON_EXEMPT):
            response = error_response(
                415,
                "unsupported_media_type",
                "Send the body as JSON (`Content-Type: application/json`).",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
