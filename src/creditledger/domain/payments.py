"""What a payment provider tells us, in our own words (SPEC §8).

Providers speak their own dialects (Stripe's objects, the sandbox's copies of
them); their adapters translate every answer and every webhook into these types
before a service sees it. Amounts are nano-dollars; providers charge whole cents.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from creditledger.domain.errors import InvalidAmount
from creditledger.domain.money import NANOS_PER_CENT


class PaymentStatus(enum.StrEnum):
    """A provider payment's state. Later members never give way to earlier ones."""

    PENDING = "pending"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    DISPUTED = "disputed"
    REFUNDED = "refunded"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_paid(self) -> bool:
        """The money arrived (it may since have been disputed or refunded)."""
        return self.rank >= _RANK[PaymentStatus.SUCCEEDED]


_RANK = {status: n for n, status in enumerate(PaymentStatus)}


def forward(current: PaymentStatus, seen: PaymentStatus) -> PaymentStatus:
    """The state after seeing ``seen``: states only move forward, whatever the arrival order.

    A decline followed by a success (the customer tried another card in the same
    checkout) moves forward; a late decline after a success changes nothing.
    """
    return seen if seen.rank > current.rank else current


class PaymentPurpose(enum.StrEnum):
    PURCHASE = "purchase"
    AUTO_RECHARGE = "auto_recharge"


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """One provider payment as the provider sees it now.

    ``reference`` is our purchase or recharge id, carried by the provider in the
    payment's metadata; ``provider_payment_id`` is the provider's id of the money
    movement (a PaymentIntent on Stripe) and is granted at most once.
    """

    status: PaymentStatus
    provider_payment_id: str | None
    purpose: PaymentPurpose | None = None
    reference: str | None = None
    amount: int = 0
    """Nanos received (for a paid payment)."""
    refunded: int = 0
    """Nanos refunded so far, cumulative."""
    customer_ref: str | None = None
    payment_method_ref: str | None = None
    """The saved card for off-session charges, when the provider reports one."""
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A verified webhook. ``outcome`` is None for event types we do not act on."""

    event_id: str
    type: str
    outcome: PaymentOutcome | None


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    purchase_id: str
    team_id: str
    amount: int
    customer_ref: str | None
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    session_id: str
    url: str


@dataclass(frozen=True, slots=True)
class OffSessionCharge:
    recharge_id: str
    team_id: str
    amount: int
    customer_ref: str
    payment_method_ref: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class SavedPaymentMethod:
    customer_ref: str
    payment_method_ref: str | None
    """None until a payment saved a card for off-session use."""


@dataclass(frozen=True, slots=True)
class Payment:
    """A provider payment we have granted: one row, one grant, whatever was delivered twice."""

    id: str
    provider: str
    provider_payment_id: str
    team_id: str
    purpose: PaymentPurpose
    purchase_id: str | None
    recharge_id: str | None
    amount: int
    refunded: int
    refund_written_off: int
    """Of ``refunded``, what was taken back out of the grant (the rest had been spent)."""
    status: PaymentStatus
    grant_id: str | None
    """Set in the same transaction that inserts the row."""


def to_cents(nanos: int) -> int:
    """Whole cents for a provider; refuses anything finer."""
    cents, rest = divmod(nanos, NANOS_PER_CENT)
    if rest:
        raise InvalidAmount("Payment amounts are whole cents.")
    return cents


def from_cents(cents: int) -> int:
    return cents * NANOS_PER_CENT


@dataclass(frozen=True, slots=True)
class CheckoutPage:
    """What the sandbox's own payment page shows for one session."""

    session_id: str
    amount: int
    paid: bool
    declined: bool
    """The last card tried was declined (another may still be tried)."""
