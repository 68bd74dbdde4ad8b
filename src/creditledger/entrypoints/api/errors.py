"""The one table from error classes to HTTP statuses, and the error body shape."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from creditledger.domain import errors as e
from creditledger.entrypoints.api.openapi import allowed_methods
from creditledger.entrypoints.api.responses import Json

log = logging.getLogger(__name__)

STATUS: dict[type[e.CreditLedgerError], int] = {
    e.CreditLedgerError: 500,
    e.InvalidInput: 422,
    e.InvalidJson: 400,
    e.BadIdempotencyKey: 400,
    e.InvalidSignature: 400,
    e.InvalidCursor: 400,
    e.AuthError: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.IdempotencyKeyReused: 422,
    e.PromoCodeRefused: 422,
    e.PromoCodeAlreadyRedeemed: 409,
    e.PromoCodeLimitReached: 409,
    e.TooManyAttempts: 429,
    e.ServiceUnavailable: 503,
    e.PaymentRequestRejected: 503,
    e.InternalError: 500,
}
"""HTTP status per error class. An error answers the status of the nearest class in its
MRO that is listed, so a subclass inherits its parent's status unless it has its own
row, and the most specific row wins by construction (as starlette looks handlers up)."""


def status_of(exc: e.CreditLedgerError) -> int:
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500  # unreachable: CreditLedgerError itself is listed


def error_body(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if param is not None:
        error["param"] = param
    return {"error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Json:
    return Json(error_body(code, message, param), status_code=status, headers=headers)


def _param_of(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def domain_error_response(exc: e.CreditLedgerError) -> Json:
    """The answer to a domain error: its status, code, message and ``Retry-After``; an
    internal one is logged and answered without its details."""
    status = status_of(exc)
    if status >= 500 and status != 503:
        log.error("internal error", exc_info=exc)
        return error_response(status, exc.code, "Something went wrong on our side.")
    headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
    return error_response(status, exc.code, exc.message, exc.param, headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(e.CreditLedgerError)
    async def _domain(_: Request, exc: e.CreditLedgerError) -> Json:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Json:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "", "type": ""}
        param = _param_of(tuple(first.get("loc", ())))
        if first.get("type") == "extra_forbidden":
            return error_response(
                422, "unknown_field", f"`{param}` is not a field of this request.", param
            )
        if first.get("type") in ("json_invalid", "model_attributes_type") or param is None:
            return error_response(
                422, "invalid_request", "The body must be a JSON object as documented.", param
            )
        # A validator's own ValueError reads "Value error, <message>": keep the message.
        message = str(first.get("msg", "is invalid")).removeprefix("Value error, ")
        return error_response(422, "invalid_request", f"`{param}`: {message}.", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Json:
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            methods = allowed_methods(request.app, request.url.path)
            headers = {"Allow": ", ".join(methods)} if methods else headers
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Json:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "Something went wrong on our side.")
