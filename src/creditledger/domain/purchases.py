"""Purchases of prepaid credit.

A purchase is ``pending`` until the provider reports the payment. A decline or an
expiry makes it ``failed``, which is final: the checkout can not be paid any more,
and another attempt is another purchase. A success makes it ``succeeded``; after
that only a dispute or a refund can change it. See :meth:`Purchase.after`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from creditledger.domain.money import NANOS_PER_DOLLAR, Nanos
from creditledger.domain.payments import Bought, PaymentStatus, forward


def expired_reason(ttl: timedelta) -> str:
    """The failure reason of a purchase whose checkout was not paid in time."""
    hours = int(ttl.total_seconds() // 3600)
    return f"The checkout expired: it was not paid within {hours} hours."


@dataclass(frozen=True, slots=True, kw_only=True)
class Purchase:
    """Built by keyword only: the optional fields are None until the purchase gets them."""

    id: str
    team_id: str
    amount: Nanos
    status: PaymentStatus
    created_at: datetime
    checkout_session_id: str | None = None
    """None until the provider has made the checkout page."""
    checkout_url: str | None = None
    provider_payment_id: str | None = None
    """None until the provider reports a payment for it."""
    failure_reason: str | None = None
    """Why it failed; None unless ``failed``."""

    def after(self, seen: PaymentStatus) -> PaymentStatus:
        """The state after the provider reports ``seen``: forward only, and a failed
        purchase stays failed."""
        if self.status is PaymentStatus.FAILED:
            return self.status
        return forward(self.status, seen)

    def bought(self) -> Bought:
        return Bought(self.amount, self.status)

    def expired(self, now: datetime, ttl: timedelta) -> bool:
        """Still pending after ``ttl``: its checkout is closed and it fails."""
        return self.status is PaymentStatus.PENDING and now - self.created_at >= ttl


PRESETS: tuple[Nanos, ...] = tuple(n * NANOS_PER_DOLLAR for n in (10, 25, 50, 100))
"""The amounts the Billing page offers at a click."""


def purchase_presets(minimum: Nanos, maximum: Nanos) -> tuple[Nanos, ...]:
    """The preset amounts a purchase may have, the minimum first when it is not one."""
    allowed = tuple(p for p in PRESETS if minimum <= p <= maximum)
    return allowed if allowed and allowed[0] == minimum else (minimum, *allowed)
