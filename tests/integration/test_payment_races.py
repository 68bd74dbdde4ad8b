"""Purchases and webhooks under concurrency and faults (docs/quality.md), on both backends.

Each race releases real threads together with a barrier. A race test is only
trusted once it was seen to fail with its guard taken out; each docstring says how.

Grants are guarded twice: the team row lock (the payment is looked up under it) and
UNIQUE (provider, provider_payment_id) on ``payments``, inserted with ON CONFLICT DO
NOTHING; the webhook event id is a PRIMARY KEY written in the same transaction.
"Guards removed" below means: ``SqlTeams.lock`` replaced by ``SqlTeams.get``,
``SqlPayments.add_payment`` and ``record_event`` always answering "new" (as if the
constraints were dropped). With the lock alone removed, every test here still passed
(the UNIQUE insert decides). On SQLite nothing failed even with all three removed:
``BEGIN IMMEDIATE`` serializes every writer there, which is SQLite's guard.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.db import tables as t
from creditledger.adapters.payments.sandbox import SUCCESS_CARD, SandboxProvider
from creditledger.domain.errors import PaymentNotYetKnown, RequestInProgress
from creditledger.domain.money import dollars
from creditledger.domain.payments import PaymentOutcome, PaymentStatus
from creditledger.domain.purchases import Purchase
from creditledger.services import payments, purchases
from creditledger.services.context import Context
from creditledger.services.idempotency import IdempotentRequest
from creditledger.services.tokens import authenticate
from tests.helpers import sign_up
from tests.payments import ROUNDS, balance, outbox, pay, start_purchase, together


def _prepaid_grants(ctx: Context, team_id: str) -> list[int]:
    with ctx.uow(write=False) as uow:
        return [g.amount for g in uow.grants.for_team(team_id) if g.kind.value == "prepaid"]


def _count(ctx: Context, table: sa.Table) -> int:
    with ctx.uow(write=False) as uow:
        conn = uow.conn  # type: ignore[attr-defined]
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_twenty_simultaneous_purchases_with_one_key_make_one_checkout_and_one_grant(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    """Guard: the Idempotency-Key claim (PRIMARY KEY on idempotency_keys, claimed in its
    own transaction before the provider is called). Seen to fail with
    ``purchases.claim_key`` replaced by one that always says "new": 20 checkouts, one
    per thread, on both backends."""
    for _ in range(ROUNDS):
        _purchase_twenty_times_with_one_key(ctx, client, sandbox)


def _purchase_twenty_times_with_one_key(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    principal = authenticate(ctx, ada.token)
    request = IdempotentRequest(
        caller=principal.caller_id,
        key="one-key",
        method="POST",
        path=f"/v1/teams/{ada.team_id}/purchases",
    )
    checkouts = sandbox.checkouts_created

    def render(purchase: Purchase) -> tuple[int, str]:
        return 201, orjson.dumps({"id": purchase.id, "url": purchase.checkout_url}).decode()

    def attempt(_: int) -> tuple[int, str]:
        return purchases.start_purchase(ctx, principal, ada.team_id, "10.00", request, render)

    answers, errors = together(20, attempt)
    assert all(isinstance(e, RequestInProgress) for e in errors), errors
    assert len({body for _, body in answers}) == 1
    assert sandbox.checkouts_created == checkouts + 1
    url = orjson.loads(answers[0][1])["url"]
    pay(client, url, SUCCESS_CARD)
    for body, headers in outbox(sandbox).take():
        client.post("/v1/webhooks/sandbox", content=body, headers=headers)
    assert _prepaid_grants(ctx, ada.team_id) == [dollars("10.00")]


def test_one_webhook_delivered_ten_times_at_once_grants_once(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    """Guards: the event id, then the payment's UNIQUE row, under the team lock. Seen to
    fail with the guards removed (module docstring): 8 grants of 10 deliveries on
    PostgreSQL."""
    for _ in range(ROUNDS):
        _deliver_one_webhook_ten_times(ctx, client, sandbox)


def _deliver_one_webhook_ten_times(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    pay(client, started["checkout_url"])
    ((body, headers),) = outbox(sandbox).take()
    lowered = {k.lower(): v for k, v in headers.items()}
    events = _count(ctx, t.webhook_events)

    results, errors = together(10, lambda _: payments.handle_webhook(ctx, "sandbox", body, lowered))
    assert errors == []
    assert sorted(results) == ["duplicate"] * 9 + ["granted"]
    assert _prepaid_grants(ctx, ada.team_id) == [dollars("10.00")]
    assert _count(ctx, t.webhook_events) == events + 1


def test_the_webhook_racing_the_status_poll_grants_once(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    """Guard: the payment's UNIQUE row under the team lock; the poll has no event id, so
    only the payment row tells it the webhook granted already. Seen to fail with the
    guards removed: 2 grants in 2 of 3 rounds on PostgreSQL."""
    for _ in range(ROUNDS):
        _race_webhook_and_poll(ctx, client, sandbox)


def _race_webhook_and_poll(ctx: Context, client: TestClient, sandbox: SandboxProvider) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    pay(client, started["checkout_url"])
    ((body, headers),) = outbox(sandbox).take()
    lowered = {k.lower(): v for k, v in headers.items()}
    principal = authenticate(ctx, ada.token)

    def race(i: int) -> object:
        if i == 0:
            return payments.handle_webhook(ctx, "sandbox", body, lowered)
        return purchases.get_purchase(ctx, principal, ada.team_id, started["id"]).status

    results, errors = together(2, race)
    assert errors == []
    assert PaymentStatus.SUCCEEDED in results
    assert _prepaid_grants(ctx, ada.team_id) == [dollars("10.00")]
    assert balance(client, ada)["lifetime_paid"] == "10.00"


def test_a_lost_webhook_is_granted_once_by_reconciliation(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "25.00").json()
    pay(client, started["checkout_url"])
    outbox(sandbox).take()  # the webhook is lost
    assert payments.reconcile_payments(ctx) == 1
    assert payments.reconcile_payments(ctx) == 0
    assert _prepaid_grants(ctx, ada.team_id) == [dollars("25.00")]
    assert balance(client, ada)["billing_mode"] == "pay_as_you_go"


def test_simultaneous_reconciliations_grant_once(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    """Guard: the payment's UNIQUE row under the team lock. Seen to fail with the guards
    removed: 4 grants for one payment on PostgreSQL."""
    for _ in range(ROUNDS):
        ada = sign_up(client)
        started = start_purchase(client, ada, "10.00").json()
        pay(client, started["checkout_url"])
        outbox(sandbox).take()
        results, errors = together(4, lambda _: payments.reconcile_payments(ctx))
        assert errors == [] and sorted(results) == [0, 0, 0, 1]
        assert _prepaid_grants(ctx, ada.team_id) == [dollars("10.00")]


def _refund_and_dispute(sandbox: SandboxProvider, intent_id: str) -> list[tuple[str, bytes]]:
    """The succeeded, refunded (in part) and disputed events of one payment, signed later."""
    intent = sandbox.intent(intent_id)
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": intent_id,
        "amount_captured": intent["amount_received"],
        "amount_refunded": 400,
        "metadata": {},
    }
    sandbox.emit("charge.refunded", charge)
    sandbox.emit(
        "charge.dispute.created", {"id": "dp_1", "object": "dispute", "payment_intent": intent_id}
    )
    return [(orjson.loads(b)["type"], b) for b, _ in outbox(sandbox).take()]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_every_arrival_order_of_succeeded_refunded_disputed_ends_the_same(
    ctx: Context,
    client: TestClient,
    sandbox: SandboxProvider,
    order: tuple[int, int, int],
) -> None:
    """Events about a payment not yet known answer 503 and are delivered again, as
    providers do; once all are in, every order leaves the same state."""
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    pay(client, started["checkout_url"])
    intent_id = orjson.loads(outbox(sandbox)._events[0])["data"]["object"]["id"]
    events = _refund_and_dispute(sandbox, intent_id)
    assert [kind for kind, _ in events] == [
        "payment_intent.succeeded",
        "charge.refunded",
        "charge.dispute.created",
    ]
    waiting = [events[i][1] for i in order] * 2  # each one twice: duplicates too
    for _ in range(4):
        retry = []
        for body in waiting:
            for event_body, headers in [(body, _signed(sandbox, body))]:
                response = client.post("/v1/webhooks/sandbox", content=event_body, headers=headers)
                if response.status_code == 503:
                    retry.append(body)
                else:
                    assert response.status_code == 200, response.text
        waiting = retry
    assert waiting == []
    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{started['id']}", headers=ada.auth)
    assert shown.json()["status"] == "refunded"
    after = balance(client, ada)
    assert after["available"]["prepaid"] == "6.00"
    assert after["lifetime_paid"] == "10.00"
    with ctx.uow(write=False) as uow:
        payment = uow.payments.payment("sandbox", intent_id)
    assert payment is not None
    assert (payment.status, payment.refunded, payment.refund_written_off) == (
        PaymentStatus.REFUNDED,
        dollars("4.00"),
        dollars("4.00"),
    )


def _signed(sandbox: SandboxProvider, body: bytes) -> dict[str, str]:
    from creditledger.adapters.payments.delivery import signed_headers

    return signed_headers(sandbox.webhook_secret, body, sandbox.wall_time())


def test_a_refund_before_the_payment_is_known_asks_to_be_delivered_again(
    ctx: Context, client: TestClient, sandbox: SandboxProvider
) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    pay(client, started["checkout_url"])
    intent_id = orjson.loads(outbox(sandbox).take()[0][0])["data"]["object"]["id"]
    intent = sandbox.intent(intent_id)
    refund = replace(
        PaymentOutcome(PaymentStatus.REFUNDED, intent_id),
        refunded=dollars("10.00"),
        amount=dollars("10.00"),
    )
    with pytest.raises(PaymentNotYetKnown):
        payments.apply_outcome(ctx, refund)
    assert intent["status"] == "succeeded"
    assert _prepaid_grants(ctx, ada.team_id) == []
