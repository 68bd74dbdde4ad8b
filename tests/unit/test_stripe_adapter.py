"""The Stripe adapter, offline: the SDK talks to recorded responses of real API shapes,
and webhook signatures are made by the SDK's own signing code."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import pytest
import stripe

from creditledger.adapters.payments.stripe import StripeProvider
from creditledger.config import Settings
from creditledger.domain.errors import (
    InvalidSignature,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
)
from creditledger.domain.money import dollars
from creditledger.domain.payments import (
    CheckoutRequest,
    OffSessionCharge,
    PaymentPurpose,
    PaymentStatus,
)
from tests.stripe_recorded import RecordedHTTPClient, recorded, signed

WEBHOOK_SECRET = "whsec_test_stripe"


def provider(
    client: RecordedHTTPClient, now: float | None = None, api_base: str | None = None
) -> StripeProvider:
    return StripeProvider(
        "sk_test_offline",
        WEBHOOK_SECRET,
        "http://testserver",
        api_base=api_base,
        http_client=client,
        max_network_retries=0,
        wall_time=(lambda: now) if now is not None else time.time,
    )


def test_a_checkout_session_saves_the_card_and_carries_the_idempotency_key() -> None:
    client = RecordedHTTPClient((200, recorded("checkout_session_created")))
    session = provider(client).create_checkout(
        CheckoutRequest("pur_test", "team_test", dollars("10.00"), None, "checkout:pur_test")
    )
    assert session.session_id == "cs_test_a1b2c3d4e5f6g7h8i9j0"
    assert session.url.startswith("https://checkout.stripe.com/c/pay/")
    (sent,) = client.sent
    assert (sent["method"], sent["path"]) == ("post", "/v1/checkout/sessions")
    assert sent["headers"]["Idempotency-Key"] == "checkout:pur_test"
    assert sent["headers"]["Authorization"] == "Bearer sk_test_offline"
    form = {k: v[0] for k, v in sent["form"].items()}
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][unit_amount]"] == "1000"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["payment_intent_data[setup_future_usage]"] == "off_session"
    assert form["payment_intent_data[metadata][creditledger_purchase_id]"] == "pur_test"
    assert form["customer_creation"] == "always"
    assert form["client_reference_id"] == "pur_test"


def test_a_known_customer_is_reused_for_the_next_checkout() -> None:
    client = RecordedHTTPClient((200, recorded("checkout_session_created")))
    provider(client).create_checkout(
        CheckoutRequest("pur_2", "team_test", dollars("10.00"), "cus_RabcDEFghiJKL", "k")
    )
    form = client.sent[0]["form"]
    assert form["customer"] == ["cus_RabcDEFghiJKL"] and "customer_creation" not in form


CHARGE = OffSessionCharge(
    "rch_test", "team_test", dollars("16.00"), "cus_RabcDEFghiJKL", "pm_1Qabc", "recharge:rch_test"
)


def test_an_off_session_charge_confirms_at_once_and_reads_the_payment() -> None:
    client = RecordedHTTPClient((200, recorded("payment_intent_succeeded")))
    outcome = provider(client).charge_off_session(CHARGE)
    assert (outcome.status, outcome.provider_payment_id, outcome.amount) == (
        PaymentStatus.SUCCEEDED,
        "pi_3QabcDEFghiJKL0a1b2c3d4e",
        dollars("16.00"),
    )
    assert (outcome.purpose, outcome.reference) == (PaymentPurpose.AUTO_RECHARGE, "rch_test")
    (sent,) = client.sent
    assert sent["path"] == "/v1/payment_intents"
    assert sent["headers"]["Idempotency-Key"] == "recharge:rch_test"
    form = {k: v[0] for k, v in sent["form"].items()}
    assert (form["off_session"], form["confirm"], form["amount"]) == ("true", "true", "1600")
    assert form["payment_method"] == "pm_1Qabc" and form["customer"] == "cus_RabcDEFghiJKL"


def test_an_off_session_charge_asks_for_the_saved_card_only_so_no_return_url_is_needed() -> None:
    """Current API versions turn automatic payment methods on by default; a redirecting
    method would then need a `return_url`, which an off-session charge cannot have."""
    client = RecordedHTTPClient((200, recorded("payment_intent_succeeded")))
    provider(client).charge_off_session(CHARGE)
    form = client.sent[0]["form"]
    assert form["payment_method_types[0]"] == ["card"]
    assert "payment_method_types[1]" not in form and "return_url" not in form


def test_a_declined_off_session_charge_is_a_failed_payment_with_the_reason() -> None:
    client = RecordedHTTPClient((402, recorded("card_declined")))
    outcome = provider(client).charge_off_session(CHARGE)
    assert outcome.status is PaymentStatus.FAILED
    assert outcome.provider_payment_id == "pi_3QdeclinedXYZ0a1b2c3d4e"
    assert outcome.failure_reason == "Your card has insufficient funds."
    assert outcome.reference == "rch_test"


INVALID_REQUEST = {
    "error": {
        "type": "invalid_request_error",
        "code": "parameter_missing",
        "message": "This PaymentIntent requires a return_url.",
        "param": "return_url",
    }
}


def test_a_request_stripe_refuses_is_our_error_logged_and_not_a_decline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An `invalid_request_error` is a bug of ours (or of our configuration), not the
    customer's card: no failed payment comes out of it (which would turn auto-recharge
    off), the charge stays to be tried again, and the operators read why in the log."""
    with caplog.at_level(logging.ERROR), pytest.raises(PaymentRequestRejected) as refused:
        provider(RecordedHTTPClient((400, INVALID_REQUEST))).charge_off_session(CHARGE)
    assert "not with the card" in refused.value.message
    assert refused.value.retry_after is None
    (record,) = caplog.records
    assert "requires a return_url" in record.getMessage()
    assert "param return_url" in record.getMessage()


def test_a_checkout_stripe_refuses_is_a_clear_error_that_does_not_blame_the_provider() -> None:
    with pytest.raises(PaymentRequestRejected) as refused:
        provider(RecordedHTTPClient((400, INVALID_REQUEST))).create_checkout(
            CheckoutRequest("pur_1", "team_1", dollars("10.00"), None, "checkout:pur_1")
        )
    assert refused.value.code == "payment_request_rejected"
    for blame in ("unavailable", "did not answer", "down"):
        assert blame not in refused.value.message.lower()


def test_a_key_stripe_does_not_accept_is_ours_to_fix_not_an_outage() -> None:
    bad_key = {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
    with pytest.raises(PaymentRequestRejected):
        provider(RecordedHTTPClient((401, bad_key))).checkout_outcome("cs_1")


@pytest.mark.parametrize(
    "answer",
    [
        (500, recorded("api_error")),
        (429, {"error": {"type": "rate_limit_error", "message": "Too many requests"}}),
        stripe.APIConnectionError("connection reset"),  # type: ignore[no-untyped-call]
    ],
)
def test_a_server_error_or_a_lost_connection_is_an_outage_to_retry(
    answer: tuple[int, dict[str, object]] | Exception,
) -> None:
    with pytest.raises(PaymentProviderUnavailable):
        provider(RecordedHTTPClient(answer)).charge_off_session(CHARGE)


def test_the_api_base_setting_points_the_sdk_at_another_server() -> None:
    client = RecordedHTTPClient((200, recorded("payment_intent_succeeded")))
    provider(client, api_base="http://127.0.0.1:12111/").charge_off_session(CHARGE)
    assert client.sent[0]["base"] == "http://127.0.0.1:12111"
    default = RecordedHTTPClient((200, recorded("payment_intent_succeeded")))
    provider(default).charge_off_session(CHARGE)
    assert default.sent[0]["base"] == "https://api.stripe.com"


def test_live_keys_are_refused_unless_production_is_declared() -> None:
    with pytest.raises(ValueError, match="ENVIRONMENT=production") as refused:
        Settings(stripe_secret_key="sk_live_51abcdefSECRET")
    assert "sk_live_51abcdefSECRET" not in str(refused.value)  # a refused key is not echoed
    with pytest.raises(ValueError, match="live key"):
        Settings(stripe_secret_key="rk_live_restricted")
    declared = Settings(stripe_secret_key="sk_live_51abcdefSECRET", environment="production")
    assert declared.environment == "production"
    assert Settings(stripe_secret_key="sk_test_1").stripe_secret_key == "sk_test_1"


def test_closing_a_checkout_expires_it_or_reads_what_it_settled_as() -> None:
    expired = RecordedHTTPClient(
        (200, recorded("checkout_session_created") | {"status": "expired"})
    )
    assert provider(expired).expire_checkout("cs_1") is None
    assert expired.sent[0]["path"] == "/v1/checkout/sessions/cs_1/expire"
    not_open = {
        "error": {
            "type": "invalid_request_error",
            "message": 'Only Checkout Sessions with a status in ["open"] can be expired.',
        }
    }
    paid = RecordedHTTPClient((400, not_open), (200, recorded("checkout_session_paid")))
    outcome = provider(paid).expire_checkout("cs_1")
    assert outcome is not None and outcome.status is PaymentStatus.SUCCEEDED
    assert outcome.amount == dollars("10.00")


def test_a_declined_card_on_the_checkout_page_does_not_end_the_purchase() -> None:
    """Stripe's page stays open after a decline for another card: the event is
    acknowledged, not acted on; the purchase fails when its checkout expires."""
    intent = recorded("checkout_session_paid")["payment_intent"] | {
        "status": "requires_payment_method",
        "amount_received": 0,
        "last_payment_error": {"type": "card_error", "message": "Your card was declined."},
    }
    payload = json.dumps(
        {
            "id": "evt_declined",
            "object": "event",
            "type": "payment_intent.payment_failed",
            "created": int(time.time()),
            "data": {"object": intent},
        }
    )
    event = provider(RecordedHTTPClient()).verify_webhook(
        payload.encode(), {"stripe-signature": signed(payload, WEBHOOK_SECRET, int(time.time()))}
    )
    assert event.event_id == "evt_declined" and event.outcome is None


def test_the_status_poll_reads_the_paid_session_with_its_payment_intent() -> None:
    client = RecordedHTTPClient((200, recorded("checkout_session_paid")))
    outcome = provider(client).checkout_outcome("cs_test_a1b2c3d4e5f6g7h8i9j0")
    assert outcome is not None
    assert (outcome.status, outcome.provider_payment_id, outcome.amount) == (
        PaymentStatus.SUCCEEDED,
        "pi_3QpaidABCdefGHI0a1b2c3d4",
        dollars("10.00"),
    )
    assert outcome.payment_method_ref == "pm_1QsavedCARDforLATER"
    assert client.sent[0]["query"] == {"expand[0]": ["payment_intent"]}
    unpaid = recorded("checkout_session_created")
    assert provider(RecordedHTTPClient((200, unpaid))).checkout_outcome("cs_1") is None


def test_reconciliation_lists_only_our_succeeded_payments() -> None:
    client = RecordedHTTPClient((200, recorded("payment_intents_list")))
    since = datetime(2026, 11, 21, tzinfo=UTC)
    found = provider(client).recent_payments(since)
    assert [(o.provider_payment_id, o.reference) for o in found] == [
        ("pi_3QpaidABCdefGHI0a1b2c3d4", "pur_test")
    ]
    assert client.sent[0]["query"]["created[gte]"] == [str(int(since.timestamp()))]


def _event() -> str:
    return json.dumps(
        {
            "id": "evt_1QabcDEF",
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": 1795000100,
            "type": "payment_intent.succeeded",
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": recorded("payment_intent_succeeded")},
        }
    )


def test_a_webhook_signed_by_the_sdk_is_verified_and_read() -> None:
    payload, now = _event(), int(time.time())
    event = provider(RecordedHTTPClient()).verify_webhook(
        payload.encode(), {"stripe-signature": signed(payload, WEBHOOK_SECRET, now)}
    )
    assert event.event_id == "evt_1QabcDEF" and event.outcome is not None
    assert event.outcome.status is PaymentStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("body_change", "secret", "age"),
    [
        ("", "whsec_wrong", 0),
        ("1600", WEBHOOK_SECRET, 0),
        ("", WEBHOOK_SECRET, 301),
        ("", WEBHOOK_SECRET, -301),
    ],
)
def test_webhooks_with_a_wrong_secret_tampered_body_stale_or_future_time_are_refused(
    body_change: str, secret: str, age: int
) -> None:
    payload, now = _event(), int(time.time())
    header = signed(payload, secret, now - age)
    sent = payload.replace(body_change, "9999") if body_change else payload
    with pytest.raises(InvalidSignature):
        provider(RecordedHTTPClient(), now).verify_webhook(
            sent.encode(), {"stripe-signature": header}
        )


def test_a_webhook_without_a_signature_header_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        provider(RecordedHTTPClient()).verify_webhook(_event().encode(), {})
