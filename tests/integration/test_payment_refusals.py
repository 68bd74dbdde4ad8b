"""A payment grants exactly what was bought, whoever reports it (docs/quality.md
Faults): a webhook, the status poll, an off-session charge or reconciliation. What does
not match is refused, kept for review once, and never granted, on both backends."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from creditledger.adapters.db import tables as t
from creditledger.adapters.payments.sandbox import DECLINE_CARD, SandboxProvider
from creditledger.domain.money import dollars
from creditledger.domain.payments import (
    OffSessionCharge,
    PaymentOutcome,
    PaymentPurpose,
    PaymentStatus,
)
from creditledger.services import payments, purchases, recharge
from creditledger.services.context import Context
from creditledger.services.tokens import authenticate
from tests.helpers import sign_up
from tests.payments import balance, buy, draw_down, outbox, pay, reviews, rows
from tests.payments import start_purchase as start


def _paid(purchase_id: str, amount: str, intent_id: str = "pi_sb_other") -> PaymentOutcome:
    return PaymentOutcome(
        PaymentStatus.SUCCEEDED,
        intent_id,
        PaymentPurpose.PURCHASE,
        purchase_id,
        dollars(amount),
        currency="usd",
    )


def test_a_status_poll_reporting_another_amount_grants_nothing(
    ctx: Context, client: TestClient, sandbox: SandboxProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = sign_up(client)
    started = start(client, ada, "10.00").json()
    monkeypatch.setattr(sandbox, "checkout_outcome", lambda _: _paid(started["id"], "10000.00"))
    principal = authenticate(ctx, ada.token)
    for _ in range(3):  # every poll asks again; the review is kept once
        shown = purchases.get_purchase(ctx, principal, ada.team_id, started["id"])
        assert shown.status is PaymentStatus.PENDING
    assert [r["reason"] for r in reviews(ctx)] == ["amount_mismatch"]
    assert rows(ctx, t.payments) == []
    assert balance(client, ada)["available"]["prepaid"] == "0.00"


def test_reconciliation_reporting_another_amount_grants_nothing(
    ctx: Context, client: TestClient, sandbox: SandboxProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = sign_up(client)
    started = start(client, ada, "25.00").json()
    listed = [_paid(started["id"], "2500.00"), _paid("pur_unknown", "25.00", "pi_sb_unknown")]
    monkeypatch.setattr(sandbox, "recent_payments", lambda _since: listed)
    assert payments.reconcile_payments(ctx) == 0
    assert payments.reconcile_payments(ctx) == 0
    assert sorted(r["reason"] for r in reviews(ctx)) == ["amount_mismatch", "unknown_reference"]
    assert rows(ctx, t.payments) == []
    assert balance(client, ada)["lifetime_paid"] == "0.00"


def test_an_off_session_charge_for_another_amount_grants_nothing_and_stays_in_flight(
    ctx: Context, client: TestClient, sandbox: SandboxProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recharge stays pending: money may have moved, so no further charge is made
    on the card until an operator has looked at it."""
    ada = sign_up(client)
    buy(client, sandbox, ada, "10.00")
    recharge.set_auto_recharge(
        ctx, authenticate(ctx, ada.token), ada.team_id, True, "5.00", "20.00"
    )
    draw_down(ctx, ada.team_id, dollars("12.00"))
    charge = sandbox.charge_off_session

    def overcharged(request: OffSessionCharge) -> PaymentOutcome:
        return replace(charge(request), amount=request.amount * 100)

    monkeypatch.setattr(sandbox, "charge_off_session", overcharged)
    assert recharge.recharge_if_needed(ctx, ada.team_id) is True
    assert [r["reason"] for r in reviews(ctx)] == ["amount_mismatch"]
    assert [r["status"] for r in rows(ctx, t.recharges)] == ["pending"]
    after = balance(client, ada)
    assert (after["available"]["total"], after["lifetime_paid"]) == ("1.00", "10.00")
    assert recharge.recharge_if_needed(ctx, ada.team_id) is False


def test_a_success_reported_for_a_declined_purchase_is_refused_not_granted(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    """`failed` is final: a success arriving later (another card, a forged event, a
    provider that changed its mind) is kept for review, never turned into credit."""
    ada = sign_up(client)
    declined = buy(client, sandbox, ada, "10.00", DECLINE_CARD)
    assert declined["status"] == "failed"
    applied = payments.apply_outcome(ctx, _paid(declined["id"], "10.00"))
    assert applied is payments.Applied.REFUSED
    assert [r["reason"] for r in reviews(ctx)] == ["purchase_closed"]
    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{declined['id']}", headers=ada.auth)
    assert shown.json()["status"] == "failed"
    assert balance(client, ada)["available"]["prepaid"] == "0.00"


def test_a_second_payment_for_a_paid_purchase_is_refused_not_granted_twice(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    paid = buy(client, sandbox, ada, "10.00")
    applied = payments.apply_outcome(ctx, _paid(paid["id"], "10.00", "pi_sb_second"))
    assert applied is payments.Applied.REFUSED
    assert [r["reason"] for r in reviews(ctx)] == ["already_paid"]
    assert balance(client, ada)["available"]["prepaid"] == "10.00"
    assert len(rows(ctx, t.payments)) == 1


def test_a_known_payment_reported_again_with_another_amount_changes_nothing(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    started = start(client, ada, "10.00").json()
    pay(client, started["checkout_url"])
    intent_id = deliver_and_intent(client, sandbox)
    applied = payments.apply_outcome(ctx, _paid(started["id"], "9000.00", intent_id))
    assert applied is payments.Applied.REFUSED
    (payment,) = rows(ctx, t.payments)
    assert payment["amount_nanos"] == dollars("10.00")
    assert balance(client, ada)["available"]["prepaid"] == "10.00"


def deliver_and_intent(client: TestClient, sandbox: SandboxProvider) -> str:
    """Deliver the waiting webhooks; the id of the first one's payment."""
    waiting = outbox(sandbox).take()
    for body, headers in waiting:
        assert client.post("/v1/webhooks/sandbox", content=body, headers=headers).is_success
    intent_id: str = json.loads(waiting[0][0])["data"]["object"]["id"]
    return intent_id


def test_a_paid_checkout_without_a_payment_id_is_refused_not_a_500(
    ctx: Context, client: TestClient
) -> None:
    ada = sign_up(client)
    started = start(client, ada, "10.00").json()
    applied = payments.apply_outcome(
        ctx,
        PaymentOutcome(
            PaymentStatus.SUCCEEDED, None, PaymentPurpose.PURCHASE, started["id"], dollars("10")
        ),
    )
    assert applied is payments.Applied.REFUSED
    assert [r["reason"] for r in reviews(ctx)] == ["no_payment_id"]


def test_each_review_says_when_it_was_refused(ctx: Context, client: TestClient) -> None:
    ada = sign_up(client)
    started = start(client, ada, "10.00").json()
    payments.apply_outcome(ctx, _paid(started["id"], "1.00"))
    (review,) = reviews(ctx)
    assert review["created_at"] == ctx.clock.now()
    assert isinstance(review["created_at"], datetime)
