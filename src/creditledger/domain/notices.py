"""Notices: what a team is told, when, and how often a delivery is tried again.

A team admin sets one notification webhook (a URL, optionally a list of event types).
Each notice is written to the outbox in the transaction of the change that caused it,
then delivered at least once by a job in the Standard Webhooks format, with a stable id
receivers can dedupe by. Nothing here talks to the network or the database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from creditledger.domain.errors import InvalidRequest
from creditledger.domain.grants import EXPIRY_WARNING_DAYS
from creditledger.domain.money import NANOS_PER_DOLLAR, Nanos

EVENT_TYPES: tuple[str, ...] = (
    "balance.low",
    "credits.expiring",
    "credits.expired",
    "payment.failed",
    "auto_recharge.disabled",
    "invoice.opened",
    "invoice.paid",
    "invoice.payment_failed",
)
"""Every notice a team can subscribe to (``ping`` is sent on request only)."""
PING = "ping"

DEFAULT_LOW_BALANCE: Nanos = NANOS_PER_DOLLAR
"""The low-balance threshold of a team without auto-recharge."""

EXPIRING_WITHIN = timedelta(days=EXPIRY_WARNING_DAYS)
"""``credits.expiring`` goes out once per grant that the Billing page flags as expiring
soon (``Grant.expires_soon_in_days``)."""

MAX_URL_LENGTH = 2048

FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=12)
MAX_ATTEMPTS = 16
"""30 s doubling to 12 h between tries: the 16th and last try comes ~2.7 days after the
first (before jitter). A notice that fails all of them disables the webhook."""
JITTER = 0.2
"""Each wait is stretched or shrunk by up to this fraction, so receivers that come back
are not hit by every sender at the same second."""

LOG_KEPT = timedelta(days=30)
"""Delivered and failed notices stay in the delivery log this long."""

CLAIM = timedelta(minutes=2)
"""A runner that claimed a notice has this long to report; then another may take it."""


class NoticeState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """Every try failed; the webhook was disabled."""


@dataclass(frozen=True, slots=True)
class Webhook:
    """A team's notification webhook. ``events`` None: every event type."""

    team_id: str
    url: str
    events: tuple[str, ...] | None
    secret: str
    created_at: datetime
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        if self.disabled_at is not None:
            return False
        return event_type == PING or self.events is None or event_type in self.events


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """One notice in the outbox; ``id`` is the ``webhook-id`` of every try."""

    id: str
    team_id: str
    type: str
    payload: dict[str, Any]
    created_at: datetime
    state: NoticeState
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


def expiring_mark(grant_id: str) -> str:
    """The once-only mark of ``credits.expiring`` for a grant."""
    return EXPIRING_MARK + grant_id


EXPIRING_MARK = "credits.expiring:"


def billing_path(team_id: str) -> str:
    """The team's Billing page (Team Settings > Billing), where notices link to."""
    return f"/teams/{team_id}/settings/billing"


def check_events(events: object) -> tuple[str, ...] | None:
    """The event types a webhook asks for (None: all), or ``InvalidRequest``."""
    if events is None:
        return None
    if not isinstance(events, list) or not events:
        raise InvalidRequest("`events` must be a non-empty list of event types.", param="events")
    unknown = [e for e in events if not isinstance(e, str) or e not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(f"`events` may hold only: {', '.join(EVENT_TYPES)}.", param="events")
    return tuple(dict.fromkeys(events))


def low_balance_threshold(recharge_threshold: Nanos | None) -> Nanos:
    """A team is low on credit below its auto-recharge threshold, else below $1.00."""
    return DEFAULT_LOW_BALANCE if recharge_threshold is None else recharge_threshold


def fell_below(before: Nanos, after: Nanos, threshold: Nanos) -> bool:
    """Did the available credit cross the threshold downwards?"""
    return before >= threshold > after


def instant(value: datetime) -> str:
    """A time as notices carry it: RFC 3339 in UTC (``…Z``)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def payload(
    event_type: str, team_id: str, at: datetime, billing_url: str, data: dict[str, Any]
) -> dict[str, Any]:
    """The body of a notice, in the Standard Webhooks shape ``{type, timestamp, data}``."""
    return {
        "type": event_type,
        "timestamp": instant(at),
        "data": {"team_id": team_id, **data, "billing_url": billing_url},
    }


def retry_at(attempts: int, at: datetime, jitter: float) -> datetime | None:
    """When to try again after ``attempts`` failed tries, or None: give up.

    ``jitter`` is a number in [-1, 1] (random in production), scaled by :data:`JITTER`.
    """
    if attempts >= MAX_ATTEMPTS:
        return None
    wait: timedelta = min(FIRST_RETRY * 2 ** max(0, attempts - 1), LONGEST_WAIT)
    stretched: timedelta = wait * (1 + JITTER * max(-1.0, min(1.0, jitter)))
    return at + stretched
