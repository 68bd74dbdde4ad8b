"""What a payment provider tells us, in our own words.

Providers speak their own dialects (Stripe's objects, the sandbox's copies of
them); their adapters translate every answer and every webhook into these types
before a service sees it. Amounts are nano-dollars; providers charge whole cents.

Whether a payment the provider reports as paid may become credit is decided here,
once, by :func:`refusal`: it must name something we sold that is still waiting for
its payment, in our currency, for exactly the amount that was bought.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from creditledger.domain.errors import InvalidAmount, InvalidRequest
from creditledger.domain.money import NANOS_PER_CENT, Nanos
from creditledger.domain.notices import billing_path


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

    A late decline after a success changes nothing; a dispute or a refund follows a
    success whenever it arrives. (A purchase adds one rule: ``failed`` is final, see
    :meth:`domain.purchases.Purchase.after`.)
    """
    return seen if seen.rank > current.rank else current


class PaymentPurpose(enum.StrEnum):
    PURCHASE = "purchase"
    AUTO_RECHARGE = "auto_recharge"
    INVOICE = "invoice"


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
    amount: Nanos = 0
    """Nanos received (for a paid payment)."""
    refunded: Nanos = 0
    """Nanos refunded so far, cumulative."""
    customer_ref: str | None = None
    payment_method_ref: str | None = None
    """The saved card for off-session charges, when the provider reports one."""
    failure_reason: str | None = None
    currency: str | None = None
    """ISO code in lower case as the provider reports it (``usd``); None when not said."""


CURRENCY = "usd"


class Refusal(enum.StrEnum):
    """Why a payment the provider reports as paid is not granted, but kept for review."""

    UNKNOWN_REFERENCE = "unknown_reference"
    """It names no purchase or recharge of ours."""
    NO_PAYMENT_ID = "no_payment_id"
    """It carries no provider payment id, so it could not be granted only once."""
    CURRENCY_MISMATCH = "currency_mismatch"
    AMOUNT_NOT_POSITIVE = "amount_not_positive"
    """Zero or negative."""
    AMOUNT_MISMATCH = "amount_mismatch"
    """Another amount than the one bought (more or less)."""
    PURCHASE_CLOSED = "purchase_closed"
    """What it pays for is over: declined, expired or failed, which is final."""
    ALREADY_PAID = "already_paid"
    """Another provider payment paid for it already."""
    NOT_GRANTED = "not_granted"
    """A refund or dispute of a payment that was itself refused."""


@dataclass(frozen=True, slots=True)
class Bought:
    """What a provider payment must match: the purchase or recharge it names."""

    amount: Nanos
    """Nanos that were bought."""
    status: PaymentStatus
    """Its state now: only a ``pending`` one may still be paid."""


def refusal(outcome: PaymentOutcome, bought: Bought | None) -> Refusal | None:
    """Why a payment reported as paid must not be granted for ``bought``, or None.

    The one place that decides whether a provider payment matches what was bought:
    webhooks, status polls, off-session charges and reconciliation all come here.
    """
    if bought is None:
        return Refusal.UNKNOWN_REFERENCE
    if outcome.provider_payment_id is None:
        return Refusal.NO_PAYMENT_ID
    if outcome.currency is not None and outcome.currency.lower() != CURRENCY:
        return Refusal.CURRENCY_MISMATCH
    if outcome.amount <= 0:
        return Refusal.AMOUNT_NOT_POSITIVE
    if outcome.amount != bought.amount:
        return Refusal.AMOUNT_MISMATCH
    if bought.status.is_paid:
        return Refusal.ALREADY_PAID
    if bought.status is not PaymentStatus.PENDING:
        return Refusal.PURCHASE_CLOSED
    return None


@dataclass(frozen=True, slots=True)
class PaymentReview:
    """A provider payment that was refused, kept for an operator to look at."""

    provider: str
    reason: Refusal
    amount_claimed: Nanos
    """Nanos the provider said were received: untrusted, any integer."""
    amount_expected: Nanos | None
    """Nanos that were bought; None when it names nothing of ours."""
    provider_payment_id: str | None
    purpose: PaymentPurpose | None
    reference: str | None
    team_id: str | None
    event_id: str | None
    """The webhook event that reported it; None for a status poll or reconciliation."""


PUBLIC_SANDBOX_SECRETS = frozenset({"whsec_sandbox_local_development_only"})
"""Signing secrets that were ever published as defaults: never accepted."""


def check_webhook_secret(secret: str, name: str) -> str:
    """``secret`` unless it is empty or a published default (``InvalidRequest``)."""
    if not secret.strip():
        raise InvalidRequest(f"{name} must not be empty.", param=name)
    if secret in PUBLIC_SANDBOX_SECRETS:
        raise InvalidRequest(
            f"{name} is a published default that anyone could sign with; "
            "choose a random secret, or leave it unset to have one generated.",
            param=name,
        )
    return secret


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A verified webhook. ``outcome`` is None for event types we do not act on."""

    event_id: str
    type: str
    outcome: PaymentOutcome | None


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    reference: str
    """Our id of what is paid for: a purchase, or an invoice (``purpose``)."""
    team_id: str
    amount: Nanos
    customer_ref: str | None
    idempotency_key: str
    purpose: PaymentPurpose = PaymentPurpose.PURCHASE
    description: str = "Prepaid credits"
    """What the provider's payment page says is bought."""

    @property
    def return_path(self) -> str:
        """Where the provider sends the buyer back: :func:`billing_return_path`."""
        return billing_return_path(self.team_id, self.purpose, self.reference)


def billing_return_path(team_id: str, purpose: PaymentPurpose, reference: str) -> str:
    """The team's Billing page, told which checkout the buyer comes back from, so it
    can show how the payment went (``?purchase=pur_…`` or ``?invoice=inv_…``)."""
    return f"{billing_path(team_id)}?{purpose.value}={reference}"


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    session_id: str
    url: str


@dataclass(frozen=True, slots=True)
class OffSessionCharge:
    reference: str
    """Our id of what is paid for: a recharge, or an invoice (``purpose``)."""
    team_id: str
    amount: Nanos
    customer_ref: str
    payment_method_ref: str
    idempotency_key: str
    purpose: PaymentPurpose = PaymentPurpose.AUTO_RECHARGE


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
    amount: Nanos
    refunded: Nanos
    refund_written_off: Nanos
    """Of ``refunded``, what was taken back out of the grant (the rest had been spent)."""
    status: PaymentStatus
    grant_id: str | None
    """Set in the same transaction that inserts the row (purchases and recharges)."""
    invoice_id: str | None = None
    """The invoice it paid (an invoice payment grants no credit)."""


def to_cents(nanos: Nanos) -> int:
    """Whole cents for a provider; refuses anything finer."""
    cents, rest = divmod(nanos, NANOS_PER_CENT)
    if rest:
        raise InvalidAmount("Payment amounts are whole cents.")
    return cents


def from_cents(cents: int) -> Nanos:
    return cents * NANOS_PER_CENT


class CheckoutState(enum.StrEnum):
    """A sandbox checkout session. Only an ``open`` one can be paid; every other is final."""

    OPEN = "open"
    PAID = "paid"
    DECLINED = "declined"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class CheckoutPage:
    """What the sandbox's own payment page shows for one session."""

    session_id: str
    amount: Nanos
    state: CheckoutState
    return_path: str
    """Back to the Billing page the checkout started from."""
