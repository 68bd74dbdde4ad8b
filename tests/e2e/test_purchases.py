"""Buying credit through the API with the sandbox provider."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from creditledger.adapters.db import tables as t
from creditledger.adapters.payments.delivery import signed_headers
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.domain.errors import PaymentProviderUnavailable
from creditledger.domain.payments import CheckoutRequest, CheckoutSession
from creditledger.services.context import Context
from tests.helpers import Platform, bearer, error_code, event, operator_token, price, sign_up
from tests.payments import (
    DECLINE_CARD,
    SUCCESS_CARD,
    balance,
    buy,
    deliver,
    outbox,
    paid_intent,
    pay,
    reviews,
    rows,
    start_purchase,
)


def test_buying_ten_dollars_grants_prepaid_credit_pay_as_you_go_and_tier_1(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00")
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "pending" and body["amount"] == "10.00"
    assert body["checkout_url"].startswith("http://testserver/sandbox/checkout/cs_sb_")

    page = client.get(body["checkout_url"].removeprefix("http://testserver"))
    assert page.status_code == 200 and "$10.00" in page.text and "<form" in page.text
    paid = pay(client, body["checkout_url"], SUCCESS_CARD)
    assert paid.status_code == 200 and "Payment received" in paid.text
    assert [r.json()["result"] for r in deliver(client, sandbox)] == ["granted"]

    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{body['id']}", headers=ada.auth)
    assert shown.json()["status"] == "succeeded"
    after = balance(client, ada)
    assert after["available"] == {"total": "13.00", "promotional": "3.00", "prepaid": "10.00"}
    assert after["billing_mode"] == "pay_as_you_go"
    assert after["tier"]["level"] == 1 and after["tier"]["next_level_at"] == "50.00"
    assert after["lifetime_paid"] == "10.00"
    credits = client.get(f"/v1/teams/{ada.team_id}/credits", headers=ada.auth).json()["data"]
    assert [(c["kind"], c["source"], c["amount"]) for c in credits][-1] == (
        "prepaid",
        "purchase",
        "10.00",
    )


def test_purchases_adding_up_to_fifty_dollars_reach_tier_2(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    buy(client, sandbox, ada, "10.00")
    buy(client, sandbox, ada, "39.99")
    assert balance(client, ada)["tier"]["level"] == 1
    buy(client, sandbox, ada, "10.00")
    after = balance(client, ada)
    assert after["tier"]["level"] == 2 and after["lifetime_paid"] == "59.99"
    assert after["available"]["prepaid"] == "59.99"


def test_a_declined_purchase_is_final_and_its_checkout_charges_nothing_more(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    declined = buy(client, sandbox, ada, "25.00", DECLINE_CARD)
    assert declined["status"] == "failed" and "declined" in declined["failure_reason"]
    after = balance(client, ada)
    assert after["available"]["prepaid"] == "0.00" and after["billing_mode"] == "prepaid"
    assert after["tier"]["level"] == 0

    page = client.get(declined["checkout_url"].removeprefix("http://testserver"))
    assert "declined" in page.text and "settled" in page.text and "<form" not in page.text
    again = pay(client, declined["checkout_url"], SUCCESS_CARD)
    assert again.status_code == 200 and "settled" in again.text and "<form" not in again.text
    assert outbox(sandbox).take() == []  # no payment was made, nothing to announce
    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{declined['id']}", headers=ada.auth)
    assert shown.json()["status"] == "failed"
    assert balance(client, ada)["available"]["prepaid"] == "0.00"

    retried = buy(client, sandbox, ada, "25.00", SUCCESS_CARD)  # a new try, a new purchase
    assert retried["status"] == "succeeded" and retried["id"] != declined["id"]
    assert balance(client, ada)["available"]["prepaid"] == "25.00"


def test_a_paid_checkout_charges_nothing_when_paid_again(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    paid = buy(client, sandbox, ada, "10.00")
    again = pay(client, paid["checkout_url"], DECLINE_CARD)
    assert again.status_code == 200 and "Payment received" in again.text
    assert outbox(sandbox).take() == []
    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{paid['id']}", headers=ada.auth)
    assert shown.json()["status"] == "succeeded"
    assert balance(client, ada)["available"]["prepaid"] == "10.00"


def test_the_status_poll_grants_when_the_webhook_is_late_and_the_webhook_then_adds_nothing(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    pay(client, started["checkout_url"])
    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{started['id']}", headers=ada.auth)
    assert shown.json()["status"] == "succeeded"
    assert [r.json()["result"] for r in deliver(client, sandbox)] == ["recorded"]
    assert balance(client, ada)["available"]["prepaid"] == "10.00"


def test_a_webhook_delivered_again_is_acknowledged_and_grants_nothing(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    pay(client, started["checkout_url"])
    ((body, headers),) = outbox(sandbox).take()
    first = client.post("/v1/webhooks/sandbox", content=body, headers=headers)
    again = client.post("/v1/webhooks/sandbox", content=body, headers=headers)
    assert (first.status_code, first.json()["result"]) == (200, "granted")
    assert (again.status_code, again.json()["result"]) == (200, "duplicate")
    assert balance(client, ada)["available"]["prepaid"] == "10.00"


def test_a_purchase_needs_an_idempotency_key(client: TestClient) -> None:
    ada = sign_up(client)
    response = client.post(
        f"/v1/teams/{ada.team_id}/purchases", json={"amount": "10.00"}, headers=ada.auth
    )
    assert response.status_code == 400
    assert error_code(response) == "idempotency_key_required"


def test_purchase_amounts_are_whole_cents_between_ten_and_ten_thousand_dollars(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    for amount in ("9.99", "10000.01", "10.001", 10, "1e3", "-10.00", True, None):
        response = client.post(
            f"/v1/teams/{ada.team_id}/purchases",
            json={"amount": amount},
            headers=ada.auth | {"Idempotency-Key": f"k-{amount}"},
        )
        assert response.status_code == 422, amount
        assert error_code(response) == "invalid_amount", amount
    assert start_purchase(client, ada, "10000.00").status_code == 201
    assert sandbox.checkouts_created == 1


def test_the_same_key_replays_the_answer_and_refuses_another_amount(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    first = start_purchase(client, ada, "10.00", key="buy-1")
    again = start_purchase(client, ada, "10.00", key="buy-1")
    assert again.status_code == 201 and again.json() == first.json()
    other = start_purchase(client, ada, "20.00", key="buy-1")
    assert (other.status_code, error_code(other)) == (422, "idempotency_key_reused")
    assert sandbox.checkouts_created == 1


def test_only_the_teams_admins_can_buy_and_see_purchases(
    client: TestClient, ctx: object, sandbox: SandboxProvider
) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    client.post(
        f"/v1/teams/{ada.team_id}/members",
        json={"email": bob.email, "role": "member"},
        headers=ada.auth,
    )
    as_member = bob.__class__(bob.email, bob.token, ada.team_id, bob.user_id)
    assert start_purchase(client, as_member, "10.00").status_code == 403
    stranger = sign_up(client, "eve")
    as_stranger = stranger.__class__(stranger.email, stranger.token, ada.team_id, "x")
    assert start_purchase(client, as_stranger, "10.00").status_code == 404
    purchase = start_purchase(client, ada, "10.00").json()
    other = client.get(
        f"/v1/teams/{stranger.team_id}/purchases/{purchase['id']}", headers=stranger.auth
    )
    assert other.status_code == 404
    assert sandbox.checkouts_created == 1


def test_the_checkout_page_takes_only_test_cards(client: TestClient) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    refused = pay(client, started["checkout_url"], "5555555555554444")
    assert refused.status_code == 422 and "test card" in refused.text
    assert client.get("/sandbox/checkout/cs_sb_missing").status_code == 404
    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{started['id']}", headers=ada.auth)
    assert shown.json()["status"] == "pending"


def test_webhooks_with_a_bad_signature_are_refused(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    pay(client, started["checkout_url"])
    ((body, headers),) = outbox(sandbox).take()
    tampered = body.replace(b"1000", b"9000")
    for content, sent in (
        (tampered, headers),
        (body, {"Content-Type": "application/json"}),
        (body, headers | {"Sandbox-Signature": "t=1,v1=00"}),
        (body, headers | {"Sandbox-Signature": "garbage"}),
    ):
        response = client.post("/v1/webhooks/sandbox", content=content, headers=sent)
        assert (response.status_code, error_code(response)) == (400, "invalid_signature")
    assert balance(client, ada)["available"]["prepaid"] == "0.00"
    assert client.post("/v1/webhooks/stripe", content=body, headers=headers).status_code == 404
    assert client.post("/v1/webhooks/paypal", content=body, headers=headers).status_code == 404


def test_unknown_event_types_are_acknowledged_and_ignored(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    sandbox.emit("customer.created", {"id": "cus_1", "object": "customer"})
    assert [r.json()["result"] for r in deliver(client, sandbox)] == ["ignored"]


def test_operators_set_billing_mode_and_tier_and_a_null_tier_clears_the_override(
    client: TestClient, ctx: object, sandbox: SandboxProvider
) -> None:
    from creditledger.services.context import Context

    assert isinstance(ctx, Context)
    ada = sign_up(client)
    operator = bearer(operator_token(ctx))
    url = f"/v1/teams/{ada.team_id}/billing-settings"
    assert client.put(url, json={"tier_level": 3}, headers=ada.auth).status_code == 403
    set_both = client.put(
        url, json={"billing_mode": "pay_as_you_go", "tier_level": 5}, headers=operator
    )
    assert set_both.status_code == 200
    assert set_both.json()["tier"]["level"] == 5
    after = balance(client, ada)
    assert after["billing_mode"] == "pay_as_you_go" and after["tier"]["level"] == 5
    keep_tier = client.put(url, json={"billing_mode": "prepaid"}, headers=operator).json()
    assert keep_tier["tier_level"] == 5 and keep_tier["billing_mode"] == "prepaid"
    cleared = client.put(url, json={"tier_level": None}, headers=operator).json()
    assert cleared["tier_level"] is None and cleared["tier"]["level"] == 0
    bad = client.put(url, json={"tier_level": 6}, headers=operator)
    assert bad.status_code == 422
    unknown = client.put(url, json={"lifetime_paid": "100.00"}, headers=operator)
    assert (unknown.status_code, error_code(unknown)) == (422, "unknown_field")


def test_auto_recharge_needs_a_saved_card_and_a_ten_dollar_gap(
    client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    url = f"/v1/teams/{ada.team_id}/auto-recharge"
    assert client.get(url, headers=ada.auth).json() == {
        "enabled": False,
        "threshold": None,
        "restore_to": None,
        "disabled_reason": None,
        "payment_method_saved": False,
    }
    settings = {"enabled": True, "threshold": "5.00", "restore_to": "20.00"}
    no_card = client.put(url, json=settings, headers=ada.auth)
    assert (no_card.status_code, error_code(no_card)) == (409, "payment_method_required")
    buy(client, sandbox, ada, "10.00")
    narrow = client.put(url, json=settings | {"restore_to": "14.99"}, headers=ada.auth)
    assert (narrow.status_code, error_code(narrow)) == (422, "invalid_amount")
    fine_cents = client.put(url, json=settings | {"threshold": "5.001"}, headers=ada.auth)
    assert error_code(fine_cents) == "invalid_amount"
    on = client.put(url, json=settings, headers=ada.auth)
    assert on.status_code == 200
    assert on.json() == settings | {"disabled_reason": None, "payment_method_saved": True}
    off = client.put(url, json={"enabled": False}, headers=ada.auth).json()
    assert off["enabled"] is False and off["threshold"] == "5.00"


def test_a_provider_outage_answers_503_fails_the_purchase_and_frees_the_key(
    client: TestClient, sandbox: SandboxProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(request: CheckoutRequest) -> CheckoutSession:
        raise PaymentProviderUnavailable("The payment provider did not answer.")

    ada = sign_up(client)
    monkeypatch.setattr(sandbox, "create_checkout", down)
    refused = start_purchase(client, ada, "10.00", key="retry-me")
    assert (refused.status_code, error_code(refused)) == (503, "payment_provider_unavailable")
    assert refused.headers["Retry-After"] == "1"
    monkeypatch.undo()
    retried = start_purchase(client, ada, "10.00", key="retry-me")
    assert retried.status_code == 201 and retried.json()["status"] == "pending"


def test_a_team_that_bought_credit_stays_allowed_once_its_credit_is_spent(
    client: TestClient, sandbox: SandboxProvider, ctx: Context
) -> None:
    """The first purchase unlocks pay-as-you-go: usage past the credits accrues to the
    unpaid balance and the gateway keeps being told `allowed: true`."""
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "1.00"))
    ada = sign_up(client)
    buy(client, sandbox, ada, "10.00")
    now = ctx.clock.now()
    taken = platform.usage(event(ada.team_id, "big", now, requests=15))
    assert taken["accepted"] == 1
    after = balance(client, ada)
    assert after["available"]["total"] == "0.00" and after["unpaid_balance"] == "2.00"
    answer = client.post(
        "/v1/authorize",
        json={"team_id": ada.team_id, "product": "serverless", "model": "llama"},
        headers=bearer(platform.service),
    ).json()
    assert (answer["allowed"], answer["reason"], answer["available"]) == (True, "ok", "0.00")
    assert answer["tier"]["level"] == 1


# -- payments that do not match what was bought (refused and recorded) --------------


@pytest.mark.parametrize(
    ("cents", "currency", "reason", "claimed"),
    [
        (1_000_000, "usd", "amount_mismatch", "10000.00"),
        (999, "usd", "amount_mismatch", "9.99"),
        (10**20, "usd", "amount_mismatch", "1000000000000000000.00"),
        (0, "usd", "amount_not_positive", "0.00"),
        (-100_000, "usd", "amount_not_positive", "-1000.00"),
        (1000, "eur", "currency_mismatch", "10.00"),
    ],
)
def test_a_webhook_for_another_amount_grants_nothing_and_is_kept_for_review(
    client: TestClient,
    sandbox: SandboxProvider,
    ctx: Context,
    cents: int,
    currency: str,
    reason: str,
    claimed: str,
) -> None:
    """A $10.00 purchase and a correctly signed webhook claiming another amount: 200
    `refused` (so the provider does not deliver it again and again), no payment row, no
    grant, no tier; one review row. The real payment is then granted as usual."""
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    sandbox.emit(
        "payment_intent.succeeded",
        paid_intent(started["id"], ada.team_id, cents, intent_id="pi_sb_forged", currency=currency),
    )
    ((body, headers),) = outbox(sandbox).take()
    refused = client.post("/v1/webhooks/sandbox", content=body, headers=headers)
    assert (refused.status_code, refused.json()["result"]) == (200, "refused")
    again = client.post("/v1/webhooks/sandbox", content=body, headers=headers)
    assert (again.status_code, again.json()["result"]) == (200, "duplicate")

    after = balance(client, ada)
    assert (after["available"]["prepaid"], after["lifetime_paid"]) == ("0.00", "0.00")
    assert (after["tier"]["level"], after["billing_mode"]) == (0, "prepaid")
    assert rows(ctx, t.payments) == []
    (review,) = reviews(ctx)
    assert review["reason"] == reason
    assert review["provider_payment_id"] == "pi_sb_forged"
    assert (review["reference"], review["team_id"]) == (started["id"], ada.team_id)
    assert review["amount_claimed"] == claimed
    assert review["amount_expected_nanos"] == 10_000_000_000
    assert review["event_id"] == json.loads(body)["id"]
    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{started['id']}", headers=ada.auth)
    assert shown.json()["status"] == "pending"

    pay(client, started["checkout_url"])
    assert [r.json()["result"] for r in deliver(client, sandbox)] == ["granted"]
    assert balance(client, ada)["available"]["prepaid"] == "10.00"


def test_a_webhook_for_an_unknown_purchase_grants_nothing_and_is_kept_for_review(
    client: TestClient, sandbox: SandboxProvider, ctx: Context
) -> None:
    ada = sign_up(client)
    sandbox.emit("payment_intent.succeeded", paid_intent("pur_nosuchpurchase", ada.team_id, 1000))
    answers = deliver(client, sandbox)
    assert [(r.status_code, r.json()["result"]) for r in answers] == [(200, "refused")]
    (review,) = reviews(ctx)
    assert (review["reason"], review["reference"], review["team_id"]) == (
        "unknown_reference",
        "pur_nosuchpurchase",
        None,
    )
    assert (review["amount_claimed"], review["amount_expected_nanos"]) == ("10.00", None)
    assert rows(ctx, t.payments) == []
    assert balance(client, ada)["available"]["prepaid"] == "0.00"


def test_a_refund_of_a_refused_payment_is_kept_with_it_not_asked_for_again(
    client: TestClient, sandbox: SandboxProvider, ctx: Context
) -> None:
    """Without this the provider would be told 503 (deliver again later) for a payment
    that will never be granted, and would retry for days."""
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    sandbox.emit(
        "payment_intent.succeeded",
        paid_intent(started["id"], ada.team_id, 5000, intent_id="pi_sb_wrong"),
    )
    sandbox.emit(
        "charge.refunded",
        {
            "id": "ch_1",
            "object": "charge",
            "payment_intent": "pi_sb_wrong",
            "amount_captured": 5000,
            "amount_refunded": 5000,
            "metadata": {},
        },
    )
    answers = deliver(client, sandbox)
    assert [(r.status_code, r.json()["result"]) for r in answers] == [
        (200, "refused"),
        (200, "refused"),
    ]
    assert [r["reason"] for r in reviews(ctx)] == ["amount_mismatch", "not_granted"]


def test_a_webhook_signed_with_another_secret_is_refused_before_anything_is_read(
    client: TestClient, sandbox: SandboxProvider, ctx: Context
) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    body = json.dumps(
        {
            "id": "evt_forged",
            "type": "payment_intent.succeeded",
            "data": {"object": paid_intent(started["id"], ada.team_id, 1000)},
        }
    ).encode()
    for secret in ("whsec_sandbox_local_development_only", "whsec_guess"):
        headers = signed_headers(secret, body, sandbox.wall_time())
        refused = client.post("/v1/webhooks/sandbox", content=body, headers=headers)
        assert (refused.status_code, error_code(refused)) == (400, "invalid_signature")
    assert reviews(ctx) == [] and rows(ctx, t.payments) == []
