"""What both providers share: metadata keys and the reading of Stripe-shaped objects.

The sandbox speaks Stripe's dialect (PaymentIntents, Checkout Sessions, events),
so one translation serves both adapters. Only what creditledger acts on is read;
every other event type is acknowledged and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from creditledger.domain.errors import InvalidSignature
from creditledger.domain.payments import (
    PaymentEvent,
    PaymentOutcome,
    PaymentPurpose,
    PaymentStatus,
    from_cents,
)

PURCHASE_KEY = "creditledger_purchase_id"
RECHARGE_KEY = "creditledger_recharge_id"
INVOICE_KEY = "creditledger_invoice_id"
TEAM_KEY = "creditledger_team_id"
_KEYS = {
    PaymentPurpose.PURCHASE: PURCHASE_KEY,
    PaymentPurpose.AUTO_RECHARGE: RECHARGE_KEY,
    PaymentPurpose.INVOICE: INVOICE_KEY,
}


def metadata_for(purpose: PaymentPurpose, reference: str, team_id: str) -> dict[str, str]:
    """What a payment carries to name what it pays for (a purchase, recharge or invoice)."""
    return {_KEYS[purpose]: reference, TEAM_KEY: team_id}


def purchase_metadata(purchase_id: str, team_id: str) -> dict[str, str]:
    return metadata_for(PaymentPurpose.PURCHASE, purchase_id, team_id)


def _id_of(value: Any) -> str | None:
    """An id field that may be expanded into its object."""
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value if isinstance(value, str) else None


def _reference(metadata: Any) -> tuple[PaymentPurpose | None, str | None]:
    if not isinstance(metadata, Mapping):
        return None, None
    for purpose, key in _KEYS.items():
        if isinstance(metadata.get(key), str):
            return purpose, metadata[key]
    return None, None


_INTENT_STATUS = {
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.FAILED,
}


def _cents(value: Any) -> int:
    """Nanos of a provider's integer cents, whatever its size or sign (the services
    refuse what was not bought); anything but an integer reads as 0."""
    return from_cents(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def _currency(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def _received(intent: Mapping[str, Any], status: PaymentStatus) -> int:
    """What a PaymentIntent received: ``amount_received``. An intent that does not say
    (some Stripe emulators leave the field out) received its ``amount`` if it succeeded."""
    if "amount_received" in intent:
        return _cents(intent["amount_received"])
    return _cents(intent.get("amount")) if status is PaymentStatus.SUCCEEDED else 0


def outcome_from_intent(intent: Mapping[str, Any]) -> PaymentOutcome:
    """A PaymentIntent. A declined one is back at ``requires_payment_method`` with an error."""
    error = intent.get("last_payment_error") or {}
    status = _INTENT_STATUS.get(str(intent.get("status")), PaymentStatus.PENDING)
    if status is PaymentStatus.PENDING and intent.get("status") == "requires_payment_method":
        status = PaymentStatus.FAILED if error else PaymentStatus.PENDING
    purpose, reference = _reference(intent.get("metadata"))
    reason = None
    if status is PaymentStatus.FAILED:
        reason = str(error.get("message") or error.get("decline_code") or "payment failed")
    return PaymentOutcome(
        status=status,
        provider_payment_id=_id_of(intent.get("id")),
        purpose=purpose,
        reference=reference,
        amount=_received(intent, status),
        customer_ref=_id_of(intent.get("customer")),
        payment_method_ref=_id_of(intent.get("payment_method")),
        failure_reason=reason,
        currency=_currency(intent.get("currency")),
    )


def outcome_from_session(session: Mapping[str, Any]) -> PaymentOutcome | None:
    """A Checkout Session: paid, expired, or nothing settled yet (None)."""
    purpose, reference = _reference(session.get("metadata"))
    intent = session.get("payment_intent")
    if session.get("payment_status") == "paid":
        if isinstance(intent, Mapping) and intent.get("status") == "succeeded":
            paid = outcome_from_intent(intent)
            return PaymentOutcome(
                status=PaymentStatus.SUCCEEDED,
                provider_payment_id=paid.provider_payment_id,
                purpose=purpose or paid.purpose,
                reference=reference or paid.reference,
                amount=paid.amount,
                customer_ref=_id_of(session.get("customer")) or paid.customer_ref,
                payment_method_ref=paid.payment_method_ref,
                currency=paid.currency or _currency(session.get("currency")),
            )
        return PaymentOutcome(
            status=PaymentStatus.SUCCEEDED,
            provider_payment_id=_id_of(intent),
            purpose=purpose,
            reference=reference,
            amount=_cents(session.get("amount_total")),
            customer_ref=_id_of(session.get("customer")),
            currency=_currency(session.get("currency")),
        )
    if session.get("status") == "expired":
        return PaymentOutcome(
            status=PaymentStatus.FAILED,
            provider_payment_id=_id_of(intent),
            purpose=purpose,
            reference=reference,
            failure_reason="The checkout page expired before payment.",
        )
    return None


def outcome_from_charge(charge: Mapping[str, Any]) -> PaymentOutcome:
    """A refunded Charge: ``amount_refunded`` is cumulative."""
    purpose, reference = _reference(charge.get("metadata"))
    return PaymentOutcome(
        status=PaymentStatus.REFUNDED,
        provider_payment_id=_id_of(charge.get("payment_intent")),
        purpose=purpose,
        reference=reference,
        amount=_cents(charge.get("amount_captured")),
        refunded=_cents(charge.get("amount_refunded")),
        currency=_currency(charge.get("currency")),
    )


def outcome_from_dispute(dispute: Mapping[str, Any]) -> PaymentOutcome:
    return PaymentOutcome(
        status=PaymentStatus.DISPUTED,
        provider_payment_id=_id_of(dispute.get("payment_intent")),
    )


_INTENT_EVENTS = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
)


def event_from_dict(event: Mapping[str, Any]) -> PaymentEvent:
    """A verified Stripe-shaped event in our words; unknown types carry no outcome."""
    event_id, event_type = event.get("id"), event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(event_id, str) or not isinstance(event_type, str):
        raise InvalidSignature("The webhook body is not an event.")
    if not isinstance(obj, Mapping):
        return PaymentEvent(event_id, event_type, None)
    outcome: PaymentOutcome | None = None
    if event_type in _INTENT_EVENTS:
        outcome = outcome_from_intent(obj)
    elif event_type in (
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.expired",
    ):
        outcome = outcome_from_session(obj)
    elif event_type == "charge.refunded":
        outcome = outcome_from_charge(obj)
    elif event_type == "charge.dispute.created":
        outcome = outcome_from_dispute(obj)
    if outcome is not None and outcome.provider_payment_id is None and outcome.reference is None:
        outcome = None
    return PaymentEvent(event_id, event_type, outcome)
