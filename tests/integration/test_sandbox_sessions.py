"""The sandbox keeps its checkouts and payments in the database: a restart,
another worker process and the command line's reconciliation all see the same ones; a
pending purchase expires through the reconciliation job and its checkout can not be paid
any more. On both backends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.payments.delivery import ManualOutbox
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.adapters.payments.sandbox_store import SqlSandboxStore
from creditledger.bootstrap import build_payment_provider
from creditledger.domain.money import dollars
from creditledger.domain.payments import CheckoutRequest
from creditledger.entrypoints.api.app import create_app
from creditledger.services import payments
from creditledger.services.context import Context
from tests.conftest import SANDBOX_SECRET, make_settings
from tests.helpers import error_code, sign_up
from tests.payments import balance, deliver, outbox, pay, start_purchase


@pytest.fixture
def other_process(
    ctx: Context, database_url: str, clock: FixedClock
) -> Iterator[tuple[Context, SandboxProvider]]:
    """The same service as ``ctx`` in another process (or after a restart): its own
    engine and its own sandbox provider object, nothing shared in memory."""
    engine = create_engine(database_url)
    sandbox = SandboxProvider(
        SANDBOX_SECRET,
        "http://testserver",
        ManualOutbox(SANDBOX_SECRET),
        clock.now,
        store=SqlSandboxStore(engine),
    )
    yield replace(ctx, payments=sandbox), sandbox
    engine.dispose()


def test_a_checkout_made_by_one_process_is_paid_in_another_and_granted_once(
    client: TestClient,
    sandbox: SandboxProvider,
    other_process: tuple[Context, SandboxProvider],
) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    other_ctx, other_sandbox = other_process
    with TestClient(create_app(other_ctx)) as other:
        page = other.get(started["checkout_url"].removeprefix("http://testserver"))
        assert page.status_code == 200 and "$10.00" in page.text and "<form" in page.text
        assert "Payment received" in pay(other, started["checkout_url"]).text
    assert [r.json()["result"] for r in deliver(client, other_sandbox)] == ["granted"]
    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{started['id']}", headers=ada.auth)
    assert shown.json()["status"] == "succeeded"
    assert balance(client, ada)["available"]["prepaid"] == "10.00"


def test_a_restart_keeps_pending_checkouts_and_reconciliation_elsewhere_sees_their_payments(
    client: TestClient,
    sandbox: SandboxProvider,
    other_process: tuple[Context, SandboxProvider],
) -> None:
    """Paid, then the webhook is lost: a reconciliation run by another process (the
    command line's ``jobs run reconcile_payments``) finds the payment and grants it."""
    ada = sign_up(client)
    started = start_purchase(client, ada, "25.00").json()
    pay(client, started["checkout_url"])
    outbox(sandbox).take()  # lost with the process that held it
    other_ctx, _ = other_process
    assert payments.reconcile_payments(other_ctx) == 1
    assert payments.reconcile_payments(other_ctx) == 0
    assert balance(client, ada)["available"]["prepaid"] == "25.00"


def test_the_same_checkout_key_in_two_processes_makes_one_session(
    sandbox: SandboxProvider, other_process: tuple[Context, SandboxProvider]
) -> None:
    request = CheckoutRequest("pur_x", "team_x", dollars("10.00"), None, "checkout:pur_x")
    first = sandbox.create_checkout(request)
    second = other_process[1].create_checkout(request)
    assert first == second
    assert sandbox.checkouts_created + other_process[1].checkouts_created == 1


def _expire_after(clock: FixedClock, hours: float) -> None:
    clock.advance(timedelta(hours=hours))


def test_a_pending_purchase_expires_through_reconciliation_and_its_checkout_can_not_be_paid(
    ctx: Context, client: TestClient, sandbox: SandboxProvider, clock: FixedClock
) -> None:
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    fresh = start_purchase(client, ada, "20.00").json()
    _expire_after(clock, 23)
    later = start_purchase(client, ada, "30.00").json()
    assert payments.reconcile_payments(ctx) == 0  # nothing is 24 hours old yet
    _expire_after(clock, 1)
    assert payments.reconcile_payments(ctx) == 2
    assert payments.reconcile_payments(ctx) == 0

    for purchase in (started, fresh):
        shown = client.get(
            f"/v1/teams/{ada.team_id}/purchases/{purchase['id']}", headers=ada.auth
        ).json()
        assert shown["status"] == "failed" and "expired" in shown["failure_reason"]
        page = client.get(purchase["checkout_url"].removeprefix("http://testserver"))
        assert "expired" in page.text and "<form" not in page.text
        paid = pay(client, purchase["checkout_url"])
        assert "Payment received" not in paid.text
    assert outbox(sandbox).take() == []  # no payment was made
    assert balance(client, ada)["available"]["prepaid"] == "0.00"

    still = client.get(f"/v1/teams/{ada.team_id}/purchases/{later['id']}", headers=ada.auth)
    assert still.json()["status"] == "pending"
    pay(client, later["checkout_url"])
    assert [r.json()["result"] for r in deliver(client, sandbox)] == ["granted"]


def test_the_pending_time_is_a_setting(
    ctx: Context, client: TestClient, database_url: str, clock: FixedClock
) -> None:
    short = replace(ctx, settings=make_settings(database_url, purchase_pending_ttl_hours=2))
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    _expire_after(clock, 1.5)
    assert payments.reconcile_payments(short) == 0
    _expire_after(clock, 0.5)
    assert payments.reconcile_payments(short) == 1
    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{started['id']}", headers=ada.auth)
    assert "2 hours" in shown.json()["failure_reason"]


def test_a_checkout_paid_before_it_expired_is_granted_not_failed(
    ctx: Context, client: TestClient, sandbox: SandboxProvider, clock: FixedClock
) -> None:
    """Paid, the webhook lost, and the payment older than reconciliation's look-back:
    closing the checkout finds it paid, so it is granted instead of failed."""
    ada = sign_up(client)
    started = start_purchase(client, ada, "10.00").json()
    pay(client, started["checkout_url"])
    outbox(sandbox).take()
    _expire_after(clock, 24 * 4)
    assert payments.reconcile_payments(ctx) == 0  # granted, not expired
    shown = client.get(f"/v1/teams/{ada.team_id}/purchases/{started['id']}", headers=ada.auth)
    assert shown.json()["status"] == "succeeded"
    assert balance(client, ada)["available"]["prepaid"] == "10.00"


def test_checkout_and_webhook_links_follow_the_public_url_or_the_listening_address(
    database_url: str, clock: FixedClock
) -> None:
    listening = make_settings(
        database_url, host="0.0.0.0", port=8123, sandbox_webhook_secret=SANDBOX_SECRET
    )
    public = make_settings(
        database_url, public_url="https://billing.example.com/", sandbox_webhook_secret="whsec_x"
    )
    engine = create_engine(database_url)
    try:
        for settings, base in (
            (listening, "http://127.0.0.1:8123"),
            (public, "https://billing.example.com"),
        ):
            provider = build_payment_provider(settings, clock, engine)
            assert isinstance(provider, SandboxProvider)
            assert provider.public_url == base
            assert getattr(provider.outbox, "url", None) == f"{base}/v1/webhooks/sandbox"
    finally:
        engine.dispose()


def test_an_unknown_checkout_page_is_not_found(client: TestClient) -> None:
    missing = client.get("/sandbox/checkout/cs_sb_nosuchsession")
    assert missing.status_code == 404
    posted = client.post(
        "/sandbox/checkout/cs_sb_nosuchsession",
        content="card_number=4242424242424242",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (posted.status_code, error_code(posted)) == (404, "not_found")
