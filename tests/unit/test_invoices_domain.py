"""Invoices in the domain: the month, numbers, rounding once per line half to even,
remainders carried so that no nano is lost or made up, and every status transition."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditledger.domain.errors import InvoiceTransitionRefused
from creditledger.domain.invoices import (
    InvoiceStatus,
    LineKind,
    Period,
    UsageTotal,
    build_bill,
    invoice_number,
    may_move,
    move,
    next_period,
    period_of,
)
from creditledger.domain.money import NANOS_PER_CENT, dollars, round_half_even_to_cents

CENT = NANOS_PER_CENT
MINIMUM = dollars("0.50")
NOVEMBER = period_of(datetime(2026, 11, 17, 9, 30, tzinfo=UTC))


def usage(model: str, nanos: int, period: Period = NOVEMBER) -> UsageTotal:
    return UsageTotal(product="serverless", model=model, uncovered=nanos, period=period)


# --- period and number -----------------------------------------------------------------


def test_a_period_is_the_calendar_month_in_utc() -> None:
    assert Period(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)) == NOVEMBER
    december = next_period(NOVEMBER)
    assert next_period(december).start == datetime(2027, 1, 1, tzinfo=UTC)
    assert NOVEMBER.contains(datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC))
    assert not NOVEMBER.contains(NOVEMBER.end)


def test_invoice_numbers_are_sequential_and_padded() -> None:
    assert [invoice_number(n) for n in (1, 2, 123456)] == ["CL-000001", "CL-000002", "CL-123456"]
    with pytest.raises(ValueError, match="start at 1"):
        invoice_number(0)


# --- rounding --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nanos", "cents"),
    [
        (0, 0),
        (CENT // 2, 0),  # 0.5 ¢ → 0 (even)
        (3 * CENT // 2, 2),  # 1.5 ¢ → 2 (even)
        (5 * CENT // 2, 2),  # 2.5 ¢ → 2 (even)
        (CENT // 2 + 1, 1),  # just over half → up
        (CENT // 2 - 1, 0),
        (-CENT // 2, 0),
        (-3 * CENT // 2, -2),
        (dollars("12.345"), 1234),
        (dollars("12.355"), 1236),
    ],
)
def test_a_line_rounds_to_cents_half_to_even(nanos: int, cents: int) -> None:
    assert round_half_even_to_cents(nanos) == cents * CENT


def test_many_tiny_events_add_up_before_rounding_once() -> None:
    # 10,000 events of 0.3 ¢ each: rounded per event they would bill nothing.
    bill = build_bill(NOVEMBER, [usage("llama", 10_000 * 3 * CENT // 10)], 0, MINIMUM)
    assert bill.total == dollars("30.00")
    assert bill.carry == 0


def test_one_line_per_product_and_model_and_the_remainder_carried() -> None:
    bill = build_bill(
        NOVEMBER, [usage("mistral", dollars("1.234")), usage("llama", dollars("2.005"))], 0, MINIMUM
    )
    assert [line.description for line in bill.lines] == ["serverless llama", "serverless mistral"]
    assert [line.amount for line in bill.lines] == [dollars("2.00"), dollars("1.23")]
    assert bill.total == dollars("3.23")
    assert bill.carry == dollars("0.009")
    following = build_bill(next_period(NOVEMBER), [], bill.carry, 0)
    assert [(line.kind, line.amount) for line in following.lines] == [
        (LineKind.CARRIED, dollars("0.01"))
    ]


def test_a_total_under_the_minimum_is_not_billed_and_rolls_over_whole() -> None:
    bill = build_bill(NOVEMBER, [usage("llama", dollars("0.49"))], 0, MINIMUM)
    assert (bill.subtotal, bill.total, bill.carry) == (dollars("0.49"), 0, dollars("0.49"))
    assert [line.kind for line in bill.lines] == [LineKind.USAGE, LineKind.CARRIED_OUT]
    assert sum(line.amount for line in bill.lines) == bill.total
    december = build_bill(
        next_period(NOVEMBER), [usage("llama", dollars("0.20"))], bill.carry, MINIMUM
    )
    assert december.total == dollars("0.69")
    assert [line.kind for line in december.lines] == [LineKind.USAGE, LineKind.CARRIED]


def test_late_usage_is_a_late_line_that_names_its_period() -> None:
    december = next_period(NOVEMBER)
    bill = build_bill(december, [usage("llama", dollars("1.00"), NOVEMBER)], 0, 0)
    (line,) = bill.lines
    assert line.late and line.late_period == NOVEMBER
    assert "November 2026" in line.description


def test_nothing_to_bill_gives_no_lines() -> None:
    bill = build_bill(NOVEMBER, [usage("llama", 0)], 0, MINIMUM)
    assert (bill.lines, bill.total, bill.carry) == ((), 0, 0)


@settings(max_examples=200)
@given(
    months=st.lists(
        st.lists(st.integers(0, 5 * 10**11), max_size=4),  # up to $500 per line
        min_size=1,
        max_size=1000,
    ),
    minimum=st.sampled_from([0, MINIMUM, dollars("5.00")]),
)
def test_over_any_run_of_months_no_nano_is_lost_or_made_up(
    months: list[list[int]], minimum: int
) -> None:
    period, carry, billed, charged = NOVEMBER, 0, 0, 0
    for amounts in months:
        lines = [usage(f"m{i}", n, period) for i, n in enumerate(amounts)]
        charged += sum(amounts)
        bill = build_bill(period, lines, carry, minimum)
        assert bill.total % CENT == 0
        assert sum(line.amount for line in bill.lines) == bill.total
        assert bill.total + bill.carry == bill.exact == sum(amounts) + carry
        if bill.total:
            # What rounding leaves is at most half a cent per line.
            assert abs(bill.carry) * 2 <= CENT * len(bill.lines) + CENT
        billed += bill.total
        carry = bill.carry
        period = next_period(period)
    assert billed + carry == charged


# --- status ----------------------------------------------------------------------------

S = InvoiceStatus
ALLOWED = {
    (S.DRAFT, S.OPEN),
    (S.DRAFT, S.VOID),
    (S.OPEN, S.PAID),
    (S.OPEN, S.UNCOLLECTIBLE),
    (S.OPEN, S.VOID),
    (S.UNCOLLECTIBLE, S.PAID),
    (S.UNCOLLECTIBLE, S.VOID),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("wanted", list(S))
def test_every_status_transition_is_allowed_or_refused_with_a_stable_code(
    current: InvoiceStatus, wanted: InvoiceStatus
) -> None:
    assert may_move(current, wanted) == ((current, wanted) in ALLOWED)
    if (current, wanted) in ALLOWED:
        assert move(current, wanted) is wanted
    else:
        with pytest.raises(InvoiceTransitionRefused) as refused:
            move(current, wanted)
        assert refused.value.code == "invoice_status_conflict"
