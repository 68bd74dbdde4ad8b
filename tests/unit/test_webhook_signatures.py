"""Webhook signatures (Stripe's scheme, used by the sandbox too) and event reading."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from creditledger.adapters.payments import signatures
from creditledger.adapters.payments.base import (
    event_from_dict,
    outcome_from_intent,
    outcome_from_session,
)
from creditledger.adapters.payments.delivery import ManualOutbox
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.domain.errors import InvalidRequest, InvalidSignature
from creditledger.domain.money import dollars
from creditledger.domain.payments import CheckoutRequest, PaymentPurpose, PaymentStatus

SECRET = "whsec_unit"
BODY = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'
NOW = 1_800_000_000


def test_a_signature_made_with_the_secret_is_accepted() -> None:
    signatures.verify(BODY, signatures.sign(SECRET, BODY, NOW), SECRET, NOW, 300)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "no signature header"),
        ("", "no signature header"),
        ("v1=abc", "malformed"),
        ("t=abc,v1=abc", "malformed"),
        (f"t={NOW}", "malformed"),
        (signatures.sign("whsec_other", BODY, NOW), "does not match"),
        (signatures.sign(SECRET, BODY + b" ", NOW), "does not match"),
        (signatures.sign(SECRET, BODY, NOW - 301), "too old"),
        (signatures.sign(SECRET, BODY, NOW + 301), "in the future"),
    ],
)
def test_missing_wrong_tampered_stale_and_future_signatures_are_refused(
    header: str | None, why: str
) -> None:
    with pytest.raises(InvalidSignature) as refused:
        signatures.verify(BODY, header, SECRET, NOW, 300)
    assert why in refused.value.message


def test_a_tampered_body_is_refused() -> None:
    header = signatures.sign(SECRET, BODY, NOW)
    with pytest.raises(InvalidSignature):
        signatures.verify(BODY.replace(b"evt_1", b"evt_2"), header, SECRET, NOW, 300)


def test_any_of_several_v1_signatures_may_match() -> None:
    good = signatures.compute(SECRET, NOW, BODY)
    signatures.verify(BODY, f"t={NOW},v1=deadbeef,v1={good}", SECRET, NOW, 300)


def test_the_sandbox_checks_its_header_and_reads_the_event() -> None:
    sandbox = SandboxProvider(
        SECRET,
        "http://x",
        ManualOutbox(SECRET, lambda: NOW),
        lambda: datetime(2026, 1, 1, tzinfo=UTC),
        wall_time=lambda: NOW,
    )
    session = sandbox.create_checkout(
        CheckoutRequest("pur_1", "team_1", dollars("10.00"), None, "k")
    )
    sandbox.pay(session.session_id, "4242 4242 4242 4242")
    ((body, headers),) = sandbox.outbox.take()  # type: ignore[attr-defined]
    event = sandbox.verify_webhook(body, {k.lower(): v for k, v in headers.items()})
    assert event.type == "payment_intent.succeeded"
    assert event.outcome is not None
    assert (event.outcome.status, event.outcome.reference, event.outcome.amount) == (
        PaymentStatus.SUCCEEDED,
        "pur_1",
        dollars("10.00"),
    )
    with pytest.raises(InvalidSignature):
        sandbox.verify_webhook(body, {})
    with pytest.raises(InvalidSignature):
        sandbox.verify_webhook(b"[]", {"sandbox-signature": signatures.sign(SECRET, b"[]", NOW)})


@pytest.mark.parametrize("secret", ["", "whsec_sandbox_local_development_only"])
def test_the_sandbox_never_signs_with_an_empty_or_published_secret(secret: str) -> None:
    now = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
    with pytest.raises(InvalidRequest):
        SandboxProvider(secret, "http://x", ManualOutbox(SECRET), now)
    lazy = SandboxProvider(lambda: secret, "http://x", ManualOutbox(SECRET), now)
    with pytest.raises(InvalidRequest):
        lazy.verify_webhook(BODY, {"sandbox-signature": signatures.sign(secret, BODY, NOW)})


INTENT = {
    "id": "pi_1",
    "object": "payment_intent",
    "amount": 1000,
    "amount_received": 1000,
    "customer": "cus_1",
    "payment_method": "pm_1",
    "metadata": {"creditledger_recharge_id": "rch_1", "creditledger_team_id": "team_1"},
    "status": "succeeded",
    "last_payment_error": None,
}


def test_payment_intents_read_as_outcomes() -> None:
    paid = outcome_from_intent(INTENT)
    assert (paid.status, paid.purpose, paid.reference, paid.amount, paid.payment_method_ref) == (
        PaymentStatus.SUCCEEDED,
        PaymentPurpose.AUTO_RECHARGE,
        "rch_1",
        dollars("10.00"),
        "pm_1",
    )
    declined = outcome_from_intent(
        INTENT
        | {
            "status": "requires_payment_method",
            "amount_received": 0,
            "last_payment_error": {"message": "Your card was declined."},
        }
    )
    assert (declined.status, declined.failure_reason) == (
        PaymentStatus.FAILED,
        "Your card was declined.",
    )
    waiting = outcome_from_intent(INTENT | {"status": "processing"})
    assert waiting.status is PaymentStatus.PENDING


def test_checkout_sessions_read_as_outcomes() -> None:
    session = {
        "id": "cs_1",
        "payment_status": "paid",
        "status": "complete",
        "amount_total": 2500,
        "customer": "cus_1",
        "payment_intent": "pi_2",
        "metadata": {"creditledger_purchase_id": "pur_1"},
    }
    paid = outcome_from_session(session)
    assert paid is not None
    assert (paid.status, paid.provider_payment_id, paid.amount, paid.reference) == (
        PaymentStatus.SUCCEEDED,
        "pi_2",
        dollars("25.00"),
        "pur_1",
    )
    open_session = session | {"payment_status": "unpaid", "status": "open"}
    assert outcome_from_session(open_session) is None
    expired = outcome_from_session(open_session | {"status": "expired"})
    assert expired is not None and expired.status is PaymentStatus.FAILED


def test_unknown_event_types_carry_no_outcome_and_non_events_are_refused() -> None:
    unknown = event_from_dict({"id": "evt_9", "type": "customer.created", "data": {"object": {}}})
    assert unknown.outcome is None
    known = event_from_dict(
        orjson.loads(
            orjson.dumps(
                {"id": "evt_2", "type": "payment_intent.succeeded", "data": {"object": INTENT}}
            )
        )
    )
    assert known.outcome is not None and known.outcome.provider_payment_id == "pi_1"
    with pytest.raises(InvalidSignature):
        event_from_dict({"type": "x"})
