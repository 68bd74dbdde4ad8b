"""Usage events: what the platform reports, and the per-event validation rules."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from creditledger.domain.errors import EventError
from creditledger.domain.grants import PRODUCTS, Grant, UsageScope
from creditledger.domain.money import Nanos
from creditledger.domain.pricing import TeamPricing
from creditledger.domain.values import Value

MAX_EVENTS_PER_BATCH = 5_000
MAX_AGE = timedelta(days=35)
MAX_AHEAD = timedelta(minutes=5)
MAX_QUANTITY = 10**15
_ID_RE = re.compile(r"\A[\x21-\x7e]{1,255}\Z")
_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}\Z")
_METER_RE = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FIELDS = frozenset({"id", "team_id", "product", "model", "gpu", "timestamp", "quantities"})


class UsageEvent(Value, frozen=True):
    id: str
    team_id: str
    product: str
    model: str
    gpu: str | None
    timestamp: datetime
    quantities: dict[str, int]
    fingerprint: str
    """Hash of the payload: the same id with another fingerprint is a conflict."""

    @property
    def scope(self) -> UsageScope:
        return UsageScope(self.product, self.model, self.gpu)


class UsageRecord(Value, frozen=True, kw_only=True):
    """A charged event as stored: what it cost and how much credits did not cover."""

    team_id: str
    event_id: str
    fingerprint: str
    product: str
    model: str
    gpu: str | None
    occurred_at: datetime
    charge: Nanos
    uncovered: Nanos
    transaction_id: str | None
    received_at: datetime
    draws: tuple[tuple[str, Nanos], ...] = ()
    """What each grant paid, in order: kept so a late event can re-allocate this one."""
    unit: str | None = None
    """The meter, when the event measured exactly one (an invoice line shows it)."""
    quantity: int | None = None

    @property
    def scope(self) -> UsageScope:
        return UsageScope(self.product, self.model, self.gpu)


def single_meter(quantities: dict[str, int]) -> tuple[str, int] | tuple[None, None]:
    """(meter, quantity) of an event that measured one meter; (None, None) otherwise."""
    measured = [(meter, n) for meter, n in quantities.items() if n]
    if len(measured) != 1:
        return None, None
    return measured[0]


def encode_draws(draws: tuple[tuple[str, Nanos], ...]) -> str:
    return ";".join(f"{grant_id}={nanos}" for grant_id, nanos in draws)


def decode_draws(text: str | None) -> tuple[tuple[str, Nanos], ...]:
    if not text:
        return ()
    pairs = (item.split("=", 1) for item in text.split(";"))
    return tuple((grant_id, int(nanos)) for grant_id, nanos in pairs)


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    id: str | None
    code: str
    message: str


def _str(raw: dict[str, Any], name: str, pattern: re.Pattern[str], optional: bool = False) -> Any:
    value = raw.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise EventError("invalid_event", f"`{name}` is missing or not a valid identifier.")
    return value


def parse_timestamp(value: object) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise EventError("invalid_timestamp", "`timestamp` must be an RFC 3339 time with a zone.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EventError(
            "invalid_timestamp", "`timestamp` must be an RFC 3339 time with a zone."
        ) from None
    if parsed.tzinfo is None:
        raise EventError("invalid_timestamp", "`timestamp` needs a zone, e.g. `Z`.")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before the year 1 in UTC
        raise EventError(
            "timestamp_out_of_range", "`timestamp` is outside the range of representable times."
        ) from None


def parse_event(raw: object, now: datetime) -> UsageEvent:
    """Validate one event; raise :class:`EventError` with the rejection code."""
    if not isinstance(raw, dict):
        raise EventError("invalid_event", "Each event must be a JSON object.")
    unknown = raw.keys() - _FIELDS
    if unknown:
        raise EventError("unknown_field", f"Unknown event field(s): {sorted(unknown)}.")
    event_id = _str(raw, "id", _ID_RE)
    team_id = _str(raw, "team_id", _NAME_RE)
    product = raw.get("product")
    if not isinstance(product, str) or product not in PRODUCTS:
        raise EventError("unknown_product", f"`product` must be one of {sorted(PRODUCTS)}.")
    model = _str(raw, "model", _NAME_RE)
    gpu = _str(raw, "gpu", _NAME_RE, optional=True)
    timestamp = parse_timestamp(raw.get("timestamp"))
    if timestamp < now - MAX_AGE or timestamp > now + MAX_AHEAD:
        raise EventError(
            "timestamp_out_of_range",
            "`timestamp` must be within the last 35 days and at most 5 minutes ahead.",
        )
    quantities = raw.get("quantities")
    if not isinstance(quantities, dict) or not quantities:
        raise EventError("invalid_quantity", "`quantities` must be a non-empty object.")
    clean: dict[str, int] = {}
    for meter, quantity in quantities.items():
        if not isinstance(meter, str) or not _METER_RE.match(meter):
            raise EventError("unknown_meter", f"Meter `{str(meter)[:64]}` is not a meter name.")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise EventError("invalid_quantity", f"Quantity of `{meter}` must be an integer.")
        if not 0 <= quantity <= MAX_QUANTITY:
            raise EventError(
                "invalid_quantity", f"Quantity of `{meter}` must be from 0 to {MAX_QUANTITY}."
            )
        clean[meter] = quantity
    return UsageEvent(
        id=event_id,
        team_id=team_id,
        product=product,
        model=model,
        gpu=gpu,
        timestamp=timestamp,
        quantities=clean,
        fingerprint=fingerprint(product, model, gpu, timestamp, clean),
    )


def fingerprint(
    product: str, model: str, gpu: str | None, timestamp: datetime, quantities: dict[str, int]
) -> str:
    parts = [product, model, gpu or "", str((timestamp - _EPOCH) // _MICROSECOND)]
    parts += [f"{m}={q}" for m, q in sorted(quantities.items())]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class UsageLocks:
    """A usage batch's teams, locked, and what was read with them."""

    teams: frozenset[str]
    """The ids of the teams that exist among those asked for."""
    price_version: int | None
    """The newest price book version id (None when no team exists)."""
    watched: frozenset[str]
    """Those with a live notification webhook (as ``Notices.teams_with_webhooks``)."""
    recharging: frozenset[str]
    """Those with auto-recharge on (as ``Recharges.enabled_among``)."""
    credit: dict[str, Nanos]
    """Each team's credit balance (the ledger's cached sum of its grants) as locked."""


@dataclass(frozen=True, slots=True)
class UsageReads:
    """What charging a usage batch reads before it writes, under the teams' locks."""

    locks: UsageLocks
    fingerprints: dict[tuple[str, str], str]
    """The fingerprints of the batch's events already stored, by (team id, event id)."""
    pricing: dict[str, list[TeamPricing]]
    """The locked teams' own pricing versions."""
    grants: dict[str, list[Grant]]
    """The locked teams' grants, in the order of consumption."""
