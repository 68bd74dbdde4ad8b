"""The rules of holds: what an estimate may be, what a hold leaves usable, who is capped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from creditledger.domain.accounts import BillingMode
from creditledger.domain.errors import InvalidAmount, InvalidRequest
from creditledger.domain.holds import (
    Estimate,
    Hold,
    check_request_id,
    fits,
    hold_cap,
    left_after_holds,
    read_estimate,
)

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_an_estimate_is_an_amount_or_quantities() -> None:
    assert read_estimate({"amount": "0.05"}) == Estimate(amount=50_000_000)
    assert read_estimate({"quantities": {"input_tokens": 10, "output_tokens": 0}}) == Estimate(
        quantities={"input_tokens": 10, "output_tokens": 0}
    )


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {},
        {"amount": "1", "quantities": {"t": 1}},
        {"quantities": {}},
        {"quantities": {"t": -1}},
        {"quantities": {"t": 1.5}},
        {"quantities": {"t": True}},
        {"quantities": {"": 1}},
        {"quantities": {f"m{i}": 1 for i in range(17)}},
        {"quantities": {"t": 10**16}},
        {"other": 1},
    ],
)
def test_anything_else_is_refused(raw: object) -> None:
    with pytest.raises(InvalidRequest):
        read_estimate(raw)


@pytest.mark.parametrize("amount", [5, "5e2", "-1", "1.0000000001"])
def test_an_estimated_amount_is_money_as_the_api_writes_it(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        read_estimate({"amount": amount})


@pytest.mark.parametrize("request_id", ["", "x" * 256, "é", "a\nb", 5])
def test_a_request_id_is_what_a_usage_event_id_can_be(request_id: object) -> None:
    with pytest.raises(InvalidRequest):
        check_request_id(request_id)
    assert check_request_id("req-8f2c") == "req-8f2c"
    assert check_request_id(None) is None


def test_only_prepaid_only_teams_are_capped_and_exactly_at_their_credit() -> None:
    assert hold_cap(BillingMode.PAY_AS_YOU_GO, 100) is None
    assert hold_cap(BillingMode.PREPAID, 100) == 100
    assert fits(95, 5, 100)
    assert not fits(96, 5, 100)
    assert fits(99, 0, 100)
    assert not fits(100, 0, 100)  # nothing left: refused whatever the estimate
    assert not fits(130, 0, 100)
    assert fits(10**12, 5, None)
    assert left_after_holds(100, 30) == 70
    assert left_after_holds(100, 130) == 0


def test_a_hold_is_open_until_its_expiry() -> None:
    hold = Hold("hold_x", "team_x", 5, NOW + timedelta(minutes=10))
    assert hold.is_open_at(NOW + timedelta(minutes=10) - timedelta(microseconds=1))
    assert not hold.is_open_at(NOW + timedelta(minutes=10))
