"""A purchase end to end with the Stripe provider, offline: the SDK answers from recorded
responses and Stripe's webhook is signed by the SDK's own code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from creditledger.adapters.payments.stripe import StripeProvider
from creditledger.entrypoints.api.app import create_app
from creditledger.services.context import Context
from tests.helpers import sign_up
from tests.payments import balance, start_purchase
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
