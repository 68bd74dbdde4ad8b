"""``POST /v1/authorize`` in front of the framework: the gateway's hot path.

Every inference request asks first, so this path does the least work that keeps the
contract: the body is decoded by a precompiled msgspec decoder, the token and the team
are answered from the authorizer's memory on the event loop (no thread-pool hop), and
the answer is encoded by a precompiled encoder. Whatever this path is not sure to
decode exactly as the documented route would (another content type, no length, a
backslash, a field name twice, a body that does not decode, an unusual
``Authorization`` header) is handed on, body and all, to the route in
``routes/usage.py``, which answers it with the framework's validation and errors. When
the decision needs a read or a network call (a team not cached, SQLite, Redis) it runs
in the thread pool, as the route does. The answers are the route's: an agreement test
pins the encoder to ``AuthorizePublic`` and domain errors go through the same
:func:`~creditledger.entrypoints.api.errors.domain_error_response`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Scope

from creditledger.domain.grants import UsageScope
from creditledger.domain.money import format_amount
from creditledger.entrypoints.api.deps import client_of
from creditledger.entrypoints.api.front import PostInFront
from creditledger.services.authorize import Authorizer, Decision

PATH = "/v1/authorize"
MAX_BYTES = 16 * 1024
"""Larger bodies (an authorization is about 150 bytes) go the framework's way."""

MAX_ANSWERS = 100_000
_FIELD = re.compile(rb'"(?:team_id|product|model|gpu|request_id|estimate)"')
"""A field's name in quotes, anywhere in the body (a value that spells one counts too)."""


class AuthorizeWire(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The body, with the limits of ``schemas.AuthorizeCreate``."""

    team_id: Annotated[str, msgspec.Meta(max_length=64)]
    product: Literal["serverless", "dedicated", "container"]
    model: Annotated[str, msgspec.Meta(max_length=128)]
    gpu: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    request_id: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    estimate: Any = None


class _Tier(msgspec.Struct):
    level: int
    requests_per_minute: int
    max_output_tokens: int


class _Hold(msgspec.Struct):
    id: str
    amount: str
    expires_at: datetime
    """In UTC, which msgspec writes as ``schemas.instant`` does (``…Z``)."""


class _Answer(msgspec.Struct, omit_defaults=True):
    """``schemas.AuthorizePublic``, field for field (``hold`` and
    ``retry_after_seconds`` only when set)."""

    allowed: bool
    reason: str
    tier: _Tier
    available: str
    hold: _Hold | None = None
    retry_after_seconds: int | None = None


_decode = msgspec.json.Decoder(AuthorizeWire).decode
_encode = msgspec.json.Encoder().encode


def encode_answer(decision: Decision) -> bytes:
    """The JSON answer to an authorization, as ``authorize_public`` renders it."""
    tier = decision.tier
    hold = decision.hold
    return _encode(
        _Answer(
            allowed=decision.allowed,
            reason=decision.reason,
            tier=_Tier(tier.level, tier.requests_per_minute, tier.max_output_tokens),
            available=format_amount(decision.available),
            hold=None
            if hold is None
            else _Hold(hold.id, format_amount(hold.amount), hold.expires_at.astimezone(UTC)),
            retry_after_seconds=decision.retry_after_seconds,
        )
    )


class AuthorizeFastPath(PostInFront[AuthorizeWire]):
    """The front of the application: answers the plain authorizations itself and
    hands every other request to ``app`` (the framework's whole stack)."""

    path = PATH
    max_bytes = MAX_BYTES

    def __init__(self, app: ASGIApp, authorizer: Authorizer) -> None:
        super().__init__(app)
        self.authorizer = authorizer
        self._encoded: dict[str, tuple[Decision, bytes]] = {}
        """Each team's last answer, reused while the authorizer answers with the same
        decision (it keeps one per team and usage while nothing it depends on moves)."""

    def decode(self, body: bytes) -> AuthorizeWire | None:
        return _decoded(body)

    async def work(self, scope: Scope, token: str, decoded: AuthorizeWire) -> bytes:
        wire = decoded
        usage = UsageScope(wire.product, wire.model, wire.gpu)
        args = (token, client_of(scope), wire.team_id, usage, wire.request_id, wire.estimate)
        authorizer = self.authorizer
        decision = authorizer.from_memory(*args)
        if decision is None:
            decision = await run_in_threadpool(authorizer.request, *args)
        last = self._encoded.get(wire.team_id)
        if last is not None and last[0] is decision:
            return last[1]
        out = encode_answer(decision)
        if len(self._encoded) >= MAX_ANSWERS:
            self._encoded.clear()
        self._encoded[wire.team_id] = (decision, out)
        return out


MAX_BODIES = 10_000
MAX_KEPT_BYTES = 512
_bodies: dict[bytes, AuthorizeWire] = {}
"""Plain bodies decoded already (no request id, no estimate): a gateway asks for the same
team and model again and again."""


def _decoded(body: bytes) -> AuthorizeWire | None:
    """The body decoded, or None when the route should judge it: it does not decode,
    or it might hold a key twice (a name seen twice, or any escape)."""
    known = _bodies.get(body)
    if known is not None:
        return known
    if b"\\" in body:
        return None
    names = _FIELD.findall(body)
    if len(names) != len(set(names)):
        return None
    try:
        wire = _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if wire.request_id is None and wire.estimate is None and len(body) <= MAX_KEPT_BYTES:
        if len(_bodies) >= MAX_BODIES:
            _bodies.clear()
        _bodies[body] = wire
    return wire
