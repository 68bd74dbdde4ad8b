"""``POST /v1/authorize`` in front of the framework: the gateway's hot path.

Every inference request asks first, so this path does the least work that keeps the
contract: the body is decoded by a precompiled msgspec decoder, the token and the team
are answered from the authorizer's memory on the event loop (no thread-pool hop), and
the answer is encoded by a precompiled encoder. Whatever this path is not sure to
decode exactly as the documented route would (another content type, no length, a
backslash, a key twice at any depth, a body that does not decode, an unusual
``Authorization`` header) is handed on, body and all, to the route in
``routes/usage.py``, which answers it with the framework's validation and errors. When
the decision needs a read or a network call (a team not cached, SQLite, Redis) it runs
in the thread pool, as the route does. The answers are the route's: an agreement test
pins the encoder to ``AuthorizePublic`` and domain errors go through the same
:func:`~creditledger.entrypoints.api.errors.domain_error_response`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Scope

from creditledger.domain.grants import UsageScope
from creditledger.domain.money import format_amount
from creditledger.entrypoints.api.deps import client_of
from creditledger.entrypoints.api.front import PostInFront
from creditledger.services.authorize import Authorizer, Decision
from creditledger.services.memo import keep

PATH = "/v1/authorize"
MAX_BYTES = 16 * 1024
"""Larger bodies (an authorization is about 150 bytes) go the framework's way."""

MAX_ANSWERS = 100_000
MAX_DEPTH = 3
"""How deep an estimate may nest and still be taken here (``{"quantities": {…}}`` is 2)."""


class AuthorizeWire(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The body, with the limits of ``schemas.AuthorizeCreate``. An optional field not
    sent is ``UNSET``, not None, so that :func:`_decoded` knows every key the body named."""

    team_id: Annotated[str, msgspec.Meta(max_length=64)]
    product: Literal["serverless", "dedicated", "container"]
    model: Annotated[str, msgspec.Meta(max_length=128)]
    gpu: Annotated[str, msgspec.Meta(max_length=128)] | UnsetType | None = UNSET
    request_id: Annotated[str, msgspec.Meta(max_length=255)] | UnsetType | None = UNSET
    estimate: Any = UNSET


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
        gpu, request_id, estimate = wire.gpu, wire.request_id, wire.estimate
        usage = UsageScope(wire.product, wire.model, None if gpu is UNSET else gpu)
        args = (
            token,
            client_of(scope),
            wire.team_id,
            usage,
            None if request_id is UNSET else request_id,
            None if estimate is UNSET else estimate,
        )
        authorizer = self.authorizer
        decision = authorizer.from_memory(*args)
        if decision is None:
            decision = await run_in_threadpool(authorizer.request, *args)
        last = self._encoded.get(wire.team_id)
        if last is not None and last[0] is decision:
            return last[1]
        out = encode_answer(decision)
        if decision.hold is None:  # a decision with a hold is never given twice
            keep(self._encoded, wire.team_id, (decision, out), MAX_ANSWERS)
        return out


MAX_BODIES = 10_000
MAX_KEPT_BYTES = 512
_bodies: dict[bytes, AuthorizeWire] = {}
"""Plain bodies decoded already (no request id, no estimate): a gateway asks for the same
team and model again and again."""


def _decoded(body: bytes) -> AuthorizeWire | None:
    """The body decoded, or None when the route should judge it: it does not decode, or
    it names a key twice. The decoder keeps the last of a key given twice, so a body
    with no escape (no backslash: no quote inside a string) names no key twice exactly
    when its quotes are twice the strings, keys and values, of what it decoded to."""
    known = _bodies.get(body)
    if known is not None:
        return known
    if b"\\" in body:
        return None
    try:
        wire = _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    strings = 6  # team_id, product and model, with their values
    for value in (wire.gpu, wire.request_id, wire.estimate):
        if value is not UNSET:
            strings += 1 + _strings(value, 1)
    if body.count(b'"') != 2 * strings:
        return None
    if wire.request_id is UNSET and wire.estimate is UNSET and len(body) <= MAX_KEPT_BYTES:
        keep(_bodies, body, wire, MAX_BODIES)
    return wire


def _strings(value: object, depth: int) -> int:
    """How many JSON strings (keys and values) ``value`` was written with; a negative
    count when it nests deeper than :data:`MAX_DEPTH`, which no body matches."""
    if isinstance(value, str):
        return 1
    if depth > MAX_DEPTH:
        return -(2**40)
    if isinstance(value, dict):
        return sum([1 + _strings(item, depth + 1) for item in value.values()])
    if isinstance(value, list):
        return sum([_strings(item, depth + 1) for item in value])
    return 0
