"""The Stripe adapter against a running Stripe emulator (localstripe, from PyPI), reached
through ``CREDITLEDGER_STRIPE_API_BASE``: real HTTP, the SDK's own requests and error
handling, customers, saved cards and off-session PaymentIntents. (localstripe has no
Checkout Sessions, keeps no idempotency keys and lists PaymentIntents without date
filters: those are covered by the recorded responses of tests/unit/test_stripe_adapter.py.)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import sqlalchemy as sa
import stripe
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.payments.stripe import StripeProvider
from creditledger.bootstrap import build_payment_provider
from creditledger.domain.errors import PaymentProviderUnavailable, PaymentRequestRejected
from creditledger.domain.money import dollars
from creditledger.domain.payments import OffSessionCharge, PaymentPurpose, PaymentStatus
from creditledger.domain.recharge import AutoRecharge
from creditledger.services import recharge
from creditledger.services.context import Context
from tests.conftest import START, make_settings
from tests.helpers import sign_up
from tests.payments import draw_down

START_TIMEOUT = 30.0
SUCCEEDS = "4242424242424242"
DECLINES = "4000000000000341"
"""localstripe's card that attaches but is declined when charged."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A localstripe server on a free port, for this module; its API base URL."""
    command = shutil.which("localstripe", path=str(Path(sys.executable).parent))
    assert command is not None, "localstripe is a dev dependency: pip install -r requirements.lock"
    port = _free_port()
    process = subprocess.Popen(
        [command, "--port", str(port), "--from-scratch"],
        cwd=tmp_path_factory.mktemp("localstripe"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "localstripe exited at start"
                assert time.monotonic() < deadline, "localstripe did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass(frozen=True)
class SavedCard:
    customer: str
    payment_method: str


def _saved_card(api_base: str, number: str) -> SavedCard:
    """A customer with a card attached, made on the emulator as a checkout would."""
    client = stripe.StripeClient(
        "sk_test_emulator", base_addresses={"api": api_base}, max_network_retries=0
    )
    customer = client.v1.customers.create({"email": "payer@example.com"})
    method = client.v1.payment_methods.create(
        {
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(method.id, {"customer": customer.id})
    return SavedCard(customer.id, method.id)


def _provider(api_base: str) -> StripeProvider:
    settings = make_settings(
        "sqlite://",
        payment_provider="stripe",
        stripe_secret_key="sk_test_emulator",
        stripe_webhook_secret="whsec_emulator",
        stripe_api_base=api_base,
    )
    unused = sa.create_engine("sqlite://")  # the Stripe provider keeps nothing locally
    provider = build_payment_provider(settings, FixedClock(START), unused)
    assert isinstance(provider, StripeProvider)
    return provider


def _charge(
    card: SavedCard, amount: str = "16.00", key: str = "recharge:rch_1"
) -> OffSessionCharge:
    return OffSessionCharge(
        "rch_1", "team_1", dollars(amount), card.customer, card.payment_method, key
    )


def test_an_off_session_charge_on_a_saved_card_succeeds(emulator: str) -> None:
    card = _saved_card(emulator, SUCCEEDS)
    outcome = _provider(emulator).charge_off_session(_charge(card))
    assert outcome.status is PaymentStatus.SUCCEEDED
    assert outcome.provider_payment_id is not None
    assert outcome.provider_payment_id.startswith("pi_")
    assert (outcome.amount, outcome.currency) == (dollars("16.00"), "usd")
    assert (outcome.purpose, outcome.reference) == (PaymentPurpose.AUTO_RECHARGE, "rch_1")
    assert (outcome.customer_ref, outcome.payment_method_ref) == (
        card.customer,
        card.payment_method,
    )


def test_a_card_declined_when_charged_is_a_failed_payment_with_its_reason(emulator: str) -> None:
    outcome = _provider(emulator).charge_off_session(_charge(_saved_card(emulator, DECLINES)))
    assert outcome.status is PaymentStatus.FAILED
    assert outcome.failure_reason == "Your card was declined."


def test_a_request_the_emulator_refuses_is_our_error_and_not_a_decline(emulator: str) -> None:
    card = _saved_card(emulator, SUCCEEDS)
    with pytest.raises(PaymentRequestRejected):
        _provider(emulator).charge_off_session(replace(_charge(card), payment_method_ref="pm_x"))


def test_a_stripe_that_does_not_answer_is_an_outage_to_retry() -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    card = SavedCard("cus_x", "pm_x")
    with pytest.raises(PaymentProviderUnavailable):
        _provider(closed).charge_off_session(_charge(card))


def _team_with_auto_recharge(ctx: Context, client: TestClient, card: SavedCard) -> str:
    """$3 of sign-up credit, the card saved, auto-recharge below $5 back to $20."""
    ada = sign_up(client)
    with ctx.uow() as uow:
        now = ctx.clock.now()
        uow.payments.save_method(ada.team_id, "stripe", card.customer, card.payment_method, now)
        uow.recharges.save_settings(
            ada.team_id, AutoRecharge(True, dollars("5.00"), dollars("20.00")), now
        )
        uow.commit()
    return ada.team_id


def test_auto_recharge_through_stripe_grants_the_charge_once(
    ctx: Context, client: TestClient, emulator: str
) -> None:
    stripe_ctx = replace(ctx, payments=_provider(emulator))
    team_id = _team_with_auto_recharge(ctx, client, _saved_card(emulator, SUCCEEDS))
    draw_down(ctx, team_id, dollars("2.00"))  # $1 left
    assert recharge.recharge_if_needed(stripe_ctx, team_id) is True
    assert recharge.recharge_if_needed(stripe_ctx, team_id) is False
    with ctx.uow(write=False) as uow:
        grants = [g for g in uow.grants.for_team(team_id) if g.kind.value == "prepaid"]
        team = uow.teams.get(team_id)
    assert [g.amount for g in grants] == [dollars("19.00")]
    assert team is not None and team.lifetime_paid == dollars("19.00")


def test_a_recharge_declined_through_stripe_turns_auto_recharge_off(
    ctx: Context, client: TestClient, emulator: str
) -> None:
    stripe_ctx = replace(ctx, payments=_provider(emulator))
    team_id = _team_with_auto_recharge(ctx, client, _saved_card(emulator, DECLINES))
    draw_down(ctx, team_id, dollars("2.00"))
    assert recharge.recharge_if_needed(stripe_ctx, team_id) is True
    with ctx.uow(write=False) as uow:
        settings = uow.recharges.settings(team_id)
    assert settings is not None and settings.enabled is False
    assert "declined" in (settings.disabled_reason or "")
    with ctx.uow(write=False) as uow:
        assert uow.teams.credit_balance(team_id) == dollars("1.00")
