"""A purchase end to end with the Stripe provider, offline: the SDK answers from recorded
responses and Stripe's webhook is signed by the SDK's own code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables as t
from creditledger.adapters.payments.stripe import StripeProvider
from creditledger.domain.money import dollars
from creditledger.domain.recharge import AutoRecharge
from creditledger.entrypoints.api.app import create_app
from creditledger.services import recharge
from creditledger.services.context import Context
from tests.helpers import error_code, sign_up
from tests.payments import balance, rows, start_purchase
from tests.stripe_recorded import RecordedHTTPClient, recorded, signed

SECRET = "whsec_e2e_stripe"


@pytest.fixture
def http() -> RecordedHTTPClient:
    return RecordedHTTPClient()


@pytest.fixture
def stripe_client(ctx: Context, http: RecordedHTTPClient) -> Iterator[TestClient]:
    provider = StripeProvider(
        "sk_test_offline", SECRET, "http://testserver", http_client=http, max_network_retries=0
    )
    with TestClient(create_app(replace(ctx, payments=provider))) as client:
        yield client


def _paid_event(purchase_id: str, team_id: str, intent_id: str, event_id: str) -> str:
    intent = recorded("checkout_session_paid")["payment_intent"]
    intent |= {
        "id": intent_id,
        "metadata": {"creditledger_purchase_id": purchase_id, "creditledger_team_id": team_id},
    }
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": intent},
        }
    )


def test_a_stripe_purchase_is_granted_once_by_its_signed_webhook(
    stripe_client: TestClient, http: RecordedHTTPClient
) -> None:
    ada = sign_up(stripe_client)
    http.answers.append((200, recorded("checkout_session_created")))
    started = start_purchase(stripe_client, ada, "10.00")
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "pending"
    assert body["checkout_url"].startswith("https://checkout.stripe.com/")
    assert http.sent[0]["headers"]["Idempotency-Key"] == f"checkout:{body['id']}"

    payload = _paid_event(body["id"], ada.team_id, "pi_e2e_1", "evt_e2e_1")
    header = {"Stripe-Signature": signed(payload, SECRET, int(time.time()))}
    first = stripe_client.post("/v1/webhooks/stripe", content=payload, headers=header)
    again = stripe_client.post("/v1/webhooks/stripe", content=payload, headers=header)
    assert [first.json()["result"], again.json()["result"]] == ["granted", "duplicate"]
    tampered = payload.replace("1000", "100000")
    refused = stripe_client.post("/v1/webhooks/stripe", content=tampered, headers=header)
    assert refused.status_code == 400

    after = balance(stripe_client, ada)
    assert after["available"]["prepaid"] == "10.00"
    assert (after["billing_mode"], after["tier"]["level"]) == ("pay_as_you_go", 1)
    shown = stripe_client.get(f"/v1/teams/{ada.team_id}/purchases/{body['id']}", headers=ada.auth)
    assert shown.json()["status"] == "succeeded"
    auto = stripe_client.get(f"/v1/teams/{ada.team_id}/auto-recharge", headers=ada.auth)
    assert auto.json()["payment_method_saved"] is True
    assert stripe_client.post("/sandbox/checkout/cs_1", content=b"card_number=1").status_code == 404


INVALID_REQUEST = {
    "error": {
        "type": "invalid_request_error",
        "code": "parameter_unknown",
        "message": "Received unknown parameter: payment_intent_data[bogus]",
        "param": "payment_intent_data[bogus]",
    }
}


def test_a_checkout_stripe_refuses_answers_a_clear_error_and_frees_the_key(
    stripe_client: TestClient, http: RecordedHTTPClient, ctx: Context
) -> None:
    """Our request was wrong, the provider is fine: 503 `payment_request_rejected`
    (nothing to retry at once: no Retry-After), a message that does not say the provider
    is down, the purchase failed (nobody saw its link) and the key free again."""
    ada = sign_up(stripe_client)
    http.answers.append((400, INVALID_REQUEST))
    refused = start_purchase(stripe_client, ada, "10.00", key="buy-once")
    assert (refused.status_code, error_code(refused)) == (503, "payment_request_rejected")
    assert "Retry-After" not in refused.headers
    message = refused.json()["error"]["message"].lower()
    assert "our side" in message and "unavailable" not in message
    assert [row["status"] for row in rows(ctx, t.purchases)] == ["failed"]
    http.answers.append((200, recorded("checkout_session_created")))
    retried = start_purchase(stripe_client, ada, "10.00", key="buy-once")
    assert retried.status_code == 201


def test_a_recharge_request_stripe_refuses_leaves_auto_recharge_on_and_charges_later(
    ctx: Context, http: RecordedHTTPClient, stripe_client: TestClient, clock: FixedClock
) -> None:
    """Not a decline: auto-recharge stays on and the recharge stays in flight, to be
    charged again (same idempotency key) by the job once the request is fixed."""
    ada = sign_up(stripe_client)
    provider = StripeProvider(
        "sk_test_offline", SECRET, "http://testserver", http_client=http, max_network_retries=0
    )
    stripe_ctx = replace(ctx, payments=provider)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.payments.save_method(ada.team_id, "stripe", "cus_RabcDEFghiJKL", "pm_1Qabc", now)
        uow.recharges.save_settings(
            ada.team_id, AutoRecharge(True, dollars("5.00"), dollars("20.00")), now
        )
        uow.commit()
    http.answers.append((400, INVALID_REQUEST))
    assert recharge.recharge_if_needed(stripe_ctx, ada.team_id) is True  # $3 < $5
    shown = stripe_client.get(f"/v1/teams/{ada.team_id}/auto-recharge", headers=ada.auth).json()
    assert (shown["enabled"], shown["disabled_reason"]) == (True, None)
    assert [row["status"] for row in rows(ctx, t.recharges)] == ["pending"]

    intent = recorded("payment_intent_succeeded")
    (rch,) = rows(ctx, t.recharges)
    intent |= {
        "amount": 1700,
        "amount_received": 1700,
        "metadata": {"creditledger_recharge_id": rch["id"], "creditledger_team_id": ada.team_id},
    }
    http.answers.append((200, intent))
    clock.advance(recharge.RESUME_AFTER * 2)
    assert recharge.run_auto_recharge(stripe_ctx) == 0  # charged again, not started anew
    assert [row["status"] for row in rows(ctx, t.recharges)] == ["succeeded"]
    assert (
        http.sent[-1]["headers"]["Idempotency-Key"] == http.sent[-2]["headers"]["Idempotency-Key"]
    )
    assert balance(stripe_client, ada)["available"]["total"] == "20.00"
