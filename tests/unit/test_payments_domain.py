"""Payment states, purchases and the auto-recharge decision."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from creditledger.domain.errors import InvalidAmount, InvalidRequest
from creditledger.domain.money import dollars
from creditledger.domain.payments import (
    Bought,
    PaymentOutcome,
    PaymentPurpose,
    PaymentStatus,
    Refusal,
    check_webhook_secret,
    forward,
    from_cents,
    refusal,
    to_cents,
)
from creditledger.domain.purchases import Purchase
from creditledger.domain.recharge import AutoRecharge, check_settings, month_start, recharge_amount

P = PaymentStatus
CAP = dollars("1000.00")
MIN = dollars("10.00")


def test_a_payment_state_only_moves_forward_whatever_the_arrival_order() -> None:
    seen = [P.SUCCEEDED, P.DISPUTED, P.REFUNDED, P.FAILED, P.PENDING]
    finals = set()
    for order in itertools.permutations(seen):
        state = P.PENDING
        for status in order:
            state = forward(state, status)
        finals.add(state)
    assert finals == {P.REFUNDED}


def test_a_late_decline_after_a_success_changes_nothing() -> None:
    assert forward(P.SUCCEEDED, P.FAILED) is P.SUCCEEDED
    assert forward(P.SUCCEEDED, P.PENDING) is P.SUCCEEDED
    assert [s.is_paid for s in P] == [False, False, True, True, True]


def _purchase(status: PaymentStatus) -> Purchase:
    at = datetime(2026, 11, 24, tzinfo=UTC)
    return Purchase(
        id="pur_1", team_id="team_1", amount=dollars("10.00"), status=status, created_at=at
    )


def test_a_failed_purchase_stays_failed_whatever_arrives_after() -> None:
    failed = _purchase(P.FAILED)
    assert {failed.after(seen) for seen in P} == {P.FAILED}
    assert _purchase(P.PENDING).after(P.FAILED) is P.FAILED
    assert _purchase(P.PENDING).after(P.SUCCEEDED) is P.SUCCEEDED
    assert _purchase(P.SUCCEEDED).after(P.REFUNDED) is P.REFUNDED


def _paid(amount: int, currency: str | None = "usd", ref: str | None = "pi_1") -> PaymentOutcome:
    return PaymentOutcome(
        P.SUCCEEDED, ref, PaymentPurpose.PURCHASE, "pur_1", amount, currency=currency
    )


TEN = dollars("10.00")


@pytest.mark.parametrize(
    ("outcome", "bought", "reason"),
    [
        (_paid(TEN), Bought(TEN, P.PENDING), None),
        (_paid(TEN, currency=None), Bought(TEN, P.PENDING), None),
        (_paid(TEN, currency="USD"), Bought(TEN, P.PENDING), None),
        (_paid(TEN), None, Refusal.UNKNOWN_REFERENCE),
        (_paid(TEN, ref=None), Bought(TEN, P.PENDING), Refusal.NO_PAYMENT_ID),
        (_paid(TEN, currency="eur"), Bought(TEN, P.PENDING), Refusal.CURRENCY_MISMATCH),
        (_paid(0), Bought(TEN, P.PENDING), Refusal.AMOUNT_NOT_POSITIVE),
        (_paid(-TEN), Bought(TEN, P.PENDING), Refusal.AMOUNT_NOT_POSITIVE),
        (_paid(TEN * 1000), Bought(TEN, P.PENDING), Refusal.AMOUNT_MISMATCH),
        (_paid(10**27), Bought(TEN, P.PENDING), Refusal.AMOUNT_MISMATCH),
        (_paid(TEN - 1), Bought(TEN, P.PENDING), Refusal.AMOUNT_MISMATCH),
        (_paid(TEN), Bought(TEN, P.FAILED), Refusal.PURCHASE_CLOSED),
        (_paid(TEN), Bought(TEN, P.SUCCEEDED), Refusal.ALREADY_PAID),
        (_paid(TEN), Bought(TEN, P.REFUNDED), Refusal.ALREADY_PAID),
    ],
)
def test_a_payment_is_granted_only_for_exactly_what_was_bought(
    outcome: PaymentOutcome, bought: Bought | None, reason: Refusal | None
) -> None:
    assert refusal(outcome, bought) is reason


@pytest.mark.parametrize("secret", ["", "  ", "whsec_sandbox_local_development_only"])
def test_an_empty_or_published_signing_secret_is_refused(secret: str) -> None:
    with pytest.raises(InvalidRequest):
        check_webhook_secret(secret, "CREDITLEDGER_SANDBOX_WEBHOOK_SECRET")
    assert check_webhook_secret("whsec_random", "X") == "whsec_random"


def test_provider_amounts_are_whole_cents() -> None:
    assert to_cents(dollars("10.25")) == 1025
    assert from_cents(1025) == dollars("10.25")
    with pytest.raises(InvalidAmount):
        to_cents(dollars("10.001"))


def _settings(threshold: str = "5.00", restore_to: str = "20.00", on: bool = True) -> AutoRecharge:
    return AutoRecharge(on, dollars(threshold), dollars(restore_to))


def test_below_the_threshold_the_recharge_restores_the_target() -> None:
    assert recharge_amount(_settings(), dollars("4.00"), 0, CAP, MIN) == dollars("16.00")
    assert recharge_amount(_settings(), 0, 0, CAP, MIN) == dollars("20.00")


def test_at_or_above_the_threshold_or_when_off_nothing_is_charged() -> None:
    assert recharge_amount(_settings(), dollars("5.00"), 0, CAP, MIN) is None
    assert recharge_amount(_settings(on=False), 0, 0, CAP, MIN) is None


def test_the_amount_rounds_up_to_a_whole_cent_and_is_at_least_the_minimum() -> None:
    nano_short = dollars("4.999999999")
    assert recharge_amount(_settings(), nano_short, 0, CAP, MIN) == dollars("15.01")
    big_min = dollars("25.00")
    assert recharge_amount(_settings(), dollars("4.00"), 0, CAP, big_min) == big_min


def test_the_monthly_cap_refuses_a_charge_that_would_pass_it() -> None:
    cap = dollars("50.00")
    assert recharge_amount(_settings(), dollars("4.00"), dollars("34.00"), cap, MIN) == dollars(
        "16.00"
    )
    assert recharge_amount(_settings(), dollars("4.00"), dollars("34.01"), cap, MIN) is None


def test_restore_to_must_be_ten_dollars_above_the_threshold_and_within_the_maximum() -> None:
    check_settings(dollars("5.00"), dollars("15.00"), dollars("10000.00"))
    with pytest.raises(InvalidAmount) as gap:
        check_settings(dollars("5.00"), dollars("14.99"), dollars("10000.00"))
    assert gap.value.param == "restore_to"
    with pytest.raises(InvalidAmount):
        check_settings(dollars("5.00"), dollars("10000.01"), dollars("10000.00"))


def test_the_cap_period_is_the_calendar_month_in_utc() -> None:
    at = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    assert month_start(at) == datetime(2026, 11, 1, tzinfo=UTC)
