"""A succeeded payment's effect on the team: lifetime paid, and pay-as-you-go from the first."""

from __future__ import annotations

from datetime import UTC, datetime

from creditledger.domain.accounts import BillingMode, Team, after_payment
from creditledger.domain.money import dollars
from creditledger.domain.tiers import tier_for


def team(mode: BillingMode = BillingMode.PREPAID, paid: str = "0.00") -> Team:
    return Team(
        id="team_1",
        name="Ada's team",
        billing_mode=mode,
        tier_level_override=None,
        lifetime_paid=dollars(paid),
        unpaid=0,
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


def test_a_first_payment_switches_a_prepaid_team_to_pay_as_you_go() -> None:
    paid = after_payment(team(), dollars("10.00"))
    assert paid.billing_mode is BillingMode.PAY_AS_YOU_GO
    assert paid.lifetime_paid == dollars("10.00")


def test_a_later_payment_keeps_the_mode_an_operator_set_back_to_prepaid() -> None:
    paid = after_payment(team(BillingMode.PREPAID, paid="10.00"), dollars("5.00"))
    assert paid.billing_mode is BillingMode.PREPAID
    assert paid.lifetime_paid == dollars("15.00")


def test_a_pay_as_you_go_team_stays_pay_as_you_go() -> None:
    paid = after_payment(team(BillingMode.PAY_AS_YOU_GO), dollars("10.00"))
    assert paid.billing_mode is BillingMode.PAY_AS_YOU_GO


def test_the_tier_follows_the_lifetime_paid_after_the_payment() -> None:
    before = team(paid="40.00")
    paid = after_payment(before, dollars("10.00"))
    assert tier_for(before.lifetime_paid, None).level == 1
    assert tier_for(paid.lifetime_paid, None).level == 2
    assert paid.tier_level_override is None
