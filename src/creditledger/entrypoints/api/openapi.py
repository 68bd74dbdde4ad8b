"""What the OpenAPI document says about answers: the error statuses each route can give.

Every error has the one shape of :class:`ErrorPublic`. Which statuses a route can
answer follows from what it is, so :func:`document_errors` derives them once for
every route instead of each route listing them:

- any route with parameters or a body: 422 (a field is wrong);
- a POST, PUT or PATCH: 400 (``invalid_json``), 413 and 415 (``BodyGuard``);
- a route that takes a token: 401 and 403;
- a path with an id in it: 404;
- a ``cursor`` or ``Idempotency-Key``: 400; an ``Idempotency-Key``: 409 and 422;
- any of these: 503 (the database or the payment provider did not answer).

Routes add what only they can answer (409 ``last_admin``, 429 …) with :func:`errors`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from creditledger.entrypoints.api.deps import get_known_principal, get_principal
from creditledger.entrypoints.api.schemas import ErrorPublic

_MEANING = {
    400: "Unreadable JSON (`invalid_json`), or a bad `Idempotency-Key`, cursor or signature",
    401: "No token, or one that is not valid (`unauthenticated`, `invalid_credentials`)",
    403: "The token may not do this (`forbidden`)",
    404: "No such resource, or another team's (`not_found`)",
    409: "Conflicts with the current state (e.g. `request_in_progress`, `last_admin`)",
    413: "The body is larger than 5 MB (`payload_too_large`)",
    415: "The body is not `application/json` (`unsupported_media_type`)",
    422: "A field is missing, of the wrong type or out of bounds (see `code` and `param`)",
    429: "Too many attempts; wait for `Retry-After` seconds (`too_many_attempts`)",
    503: "Temporarily unavailable (database or payment provider); retry after `Retry-After`",
}

Responses = dict[int | str, dict[str, Any]]

IDEMPOTENCY_KEY = "Idempotency-Key"


def errors(*statuses: int) -> Responses:
    """The OpenAPI ``responses`` entries for ``statuses``, each with the error shape."""
    return {
        status: {"model": ErrorPublic, "description": _MEANING[status]}
        for status in sorted(set(statuses))
    }


def answer(model: type[Any], status: int = 200) -> Responses:
    """For routes that return a pre-rendered ``Response`` (idempotent replays): the
    success body's model, documented as if FastAPI had rendered it."""
    return {status: {"model": model, "description": "Success"}}


def idempotency_key(*, required: bool) -> dict[str, Any]:
    """``openapi_extra`` that documents the ``Idempotency-Key`` header."""
    header = {
        "name": IDEMPOTENCY_KEY,
        "in": "header",
        "required": required,
        "description": "Unique per operation, 1 to 255 printable ASCII characters; the same "
        "key with the same body replays the first answer for 24 hours",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    }
    return {"parameters": [header]}


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _statuses(route: APIRoute) -> set[int]:
    dependant = route.dependant
    extra = route.openapi_extra or {}
    names = {p.alias for p in (*dependant.query_params, *dependant.header_params)}
    names |= {p["name"] for p in extra.get("parameters", [])}
    statuses: set[int] = set()
    if names or dependant.path_params or route.body_field or extra:
        statuses.add(422)
    if (route.methods or set()) & {"POST", "PUT", "PATCH"}:
        statuses |= {400, 413, 415, 422}
    if {get_principal, get_known_principal} & set(_calls(dependant)):
        statuses |= {401, 403}
    if dependant.path_params:
        statuses.add(404)
    if "cursor" in names:
        statuses.add(400)
    if IDEMPOTENCY_KEY in names:
        statuses |= {400, 409, 422}
    if statuses:
        statuses.add(503)  # whatever reads a request reaches the database
    return statuses


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document lists for the path template ``path`` matches
    (for a 405's ``Allow``: starlette names only the first route it tried)."""
    templates: list[tuple[re.Pattern[str], list[str]]] | None = getattr(
        app.state, "path_templates", None
    )
    if templates is None:
        templates = [
            (re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(p)) + "$"), list(ops))
            for p, ops in app.openapi()["paths"].items()
        ]
        app.state.path_templates = templates
    methods = {m.upper() for pattern, ops in templates if pattern.match(path) for m in ops}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def document_errors(router: APIRouter) -> None:
    """Give every route of ``router`` the error answers it can give (see the module doc)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            documented = set(route.responses)
            for status, entry in errors(*_statuses(route)).items():
                if status not in documented and str(status) not in documented:
                    route.responses[status] = entry
