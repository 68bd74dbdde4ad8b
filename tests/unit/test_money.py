"""Money: decimal strings in dollars at the edge, integer nano-dollars inside."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditledger.domain.errors import InvalidAmount
from creditledger.domain.money import (
    ABSOLUTE_MAX_NANOS,
    AMOUNT_PATTERN,
    NANOS_PER_CENT,
    NANOS_PER_DOLLAR,
    dollars,
    format_amount,
    parse_amount,
    round_half_even_to_cents,
)

BAD_FORMS = [
    pytest.param(10, id="json-int"),
    pytest.param(10.0, id="json-float"),
    pytest.param(0.1, id="float-tenth"),
    pytest.param(True, id="bool-true"),
    pytest.param(False, id="bool-false"),
    pytest.param(None, id="null"),
    pytest.param(Decimal("10.00"), id="decimal-object"),
    pytest.param(["10.00"], id="list"),
    pytest.param({"amount": "10.00"}, id="object"),
    pytest.param(math.nan, id="float-nan"),
    pytest.param(math.inf, id="float-inf"),
    pytest.param("", id="empty"),
    pytest.param("NaN", id="nan"),
    pytest.param("nan", id="nan-lower"),
    pytest.param("Infinity", id="infinity"),
    pytest.param("inf", id="inf"),
    pytest.param("1e3", id="exponent"),
    pytest.param("1E3", id="exponent-upper"),
    pytest.param("1.5e2", id="exponent-decimal"),
    pytest.param("-1.00", id="negative"),
    pytest.param("-0", id="negative-zero"),
    pytest.param("+1.00", id="plus-sign"),
    pytest.param(" 1.00", id="leading-space"),
    pytest.param("1.00 ", id="trailing-space"),
    pytest.param("1 000.00", id="space-separator"),
    pytest.param("1,000.00", id="comma-separator"),
    pytest.param("1_000.00", id="underscore-separator"),
    pytest.param("1'000.00", id="apostrophe-separator"),
    pytest.param("1,50", id="decimal-comma"),
    pytest.param("1.0000000001", id="ten-decimals"),
    pytest.param(".50", id="no-whole-part"),
    pytest.param("1.", id="no-fraction-digits"),
    pytest.param("1..0", id="two-dots"),
    pytest.param("1.0.0", id="two-fractions"),
    pytest.param("$1.00", id="dollar-sign"),
    pytest.param("1.00 USD", id="currency-suffix"),
    pytest.param("0x10", id="hex"),
    pytest.param("１０.００", id="full-width-digits"),
    pytest.param("١٠", id="arabic-indic-digits"),
    pytest.param("१०", id="devanagari-digits"),
    pytest.param("10.0\u0660", id="arabic-indic-decimal"),
    pytest.param("1\u00a0000", id="nbsp-separator"),
    pytest.param("1.00\n", id="trailing-newline"),
    pytest.param("\t1.00", id="leading-tab"),
    pytest.param("1.00\x00", id="nul-byte"),
    pytest.param("9" * 16, id="sixteen-whole-digits"),
]


@pytest.mark.parametrize("value", BAD_FORMS)
def test_an_amount_not_spelled_digits_dot_digits_is_refused(value: object) -> None:
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(value, param="amount")
    assert caught.value.code == "invalid_amount"
    assert caught.value.param == "amount"


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("10", 10 * NANOS_PER_DOLLAR),
        ("10.00", 10 * NANOS_PER_DOLLAR),
        ("0.5", NANOS_PER_DOLLAR // 2),
        ("0.0000074", 7_400),
        ("0.000000001", 1),
        ("123.456789012", 123_456_789_012),
        ("007.50", 7_500_000_000),
    ],
)
def test_a_decimal_string_is_read_exactly_into_nanos(text: str, nanos: int) -> None:
    assert parse_amount(text) == nanos


def test_zero_is_refused_where_the_minimum_is_positive() -> None:
    with pytest.raises(InvalidAmount):
        parse_amount("0")
    with pytest.raises(InvalidAmount):
        parse_amount("0.000000000")


def test_zero_is_accepted_where_the_minimum_is_zero() -> None:
    assert parse_amount("0.00", minimum=0) == 0


def test_an_amount_above_the_field_bound_is_refused() -> None:
    assert parse_amount("100.00", maximum=dollars("100.00")) == dollars("100.00")
    with pytest.raises(InvalidAmount, match="between"):
        parse_amount("100.000000001", maximum=dollars("100.00"))


def test_an_amount_below_the_field_bound_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        parse_amount("9.99", minimum=dollars("10.00"))


def test_no_amount_exceeds_the_absolute_ceiling() -> None:
    assert parse_amount("1000000000") == ABSOLUTE_MAX_NANOS
    with pytest.raises(InvalidAmount):
        parse_amount("1000000000.000000001")
    assert ABSOLUTE_MAX_NANOS < 2**63


def test_whole_cents_fields_refuse_fractions_of_a_cent() -> None:
    assert parse_amount("10.25", whole_cents=True) == dollars("10.25")
    with pytest.raises(InvalidAmount, match="cents"):
        parse_amount("10.255", whole_cents=True)


def test_the_error_names_the_field_it_is_about() -> None:
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(1, param="threshold")
    assert caught.value.param == "threshold"
    assert "threshold" in caught.value.message


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0.00"),
        (10 * NANOS_PER_DOLLAR, "10.00"),
        (NANOS_PER_DOLLAR // 10, "0.10"),
        (7_400, "0.0000074"),
        (1, "0.000000001"),
        (-1_500_000_000, "-1.50"),
        (-1, "-0.000000001"),
        (123_456_789_012, "123.456789012"),
    ],
)
def test_amounts_are_written_with_at_least_two_decimals(nanos: int, text: str) -> None:
    assert format_amount(nanos) == text


@pytest.mark.parametrize("value", [1.5, True, Decimal(1), "1"])
def test_formatting_refuses_anything_but_int_nanos(value: object) -> None:
    with pytest.raises(TypeError):
        format_amount(value)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=ABSOLUTE_MAX_NANOS))
def test_format_then_parse_gives_back_the_same_nanos(nanos: int) -> None:
    assert parse_amount(format_amount(nanos), minimum=0) == nanos


@given(st.integers(min_value=-ABSOLUTE_MAX_NANOS, max_value=ABSOLUTE_MAX_NANOS))
def test_a_formatted_amount_is_its_exact_decimal_value(nanos: int) -> None:
    assert Decimal(format_amount(nanos)) * NANOS_PER_DOLLAR == nanos


@given(
    st.from_regex(r"\A[0-9]{1,9}(\.[0-9]{1,9})?\Z", fullmatch=True),
)
def test_parse_then_format_keeps_the_value(text: str) -> None:
    nanos = parse_amount(text, minimum=0)
    assert Decimal(format_amount(nanos)) == Decimal(text)


@pytest.mark.parametrize(
    ("nanos", "cents"),
    [
        (5_000_000, 0),  # half a cent rounds to even (0)
        (15_000_000, 2),  # 1.5 cents rounds to even (2)
        (25_000_000, 2),  # 2.5 cents rounds to even (2)
        (25_000_001, 3),
        (24_999_999, 2),
        (-15_000_000, -2),
        (0, 0),
    ],
)
def test_rounding_to_cents_is_half_even(nanos: int, cents: int) -> None:
    assert round_half_even_to_cents(nanos) == cents * NANOS_PER_CENT


@given(
    st.one_of(
        st.from_regex(r"\A[0-9]{1,17}(\.[0-9]{0,10})?\Z"),
        st.text(alphabet="0123456789.-+e _,\u0661\uff11 ", max_size=20),
        st.text(max_size=12),
    )
)
def test_parse_amount_reads_exactly_the_spelling_the_api_document_shows(text: str) -> None:
    try:
        parse_amount(text, minimum=0, maximum=10**30)
    except InvalidAmount:
        accepted = False
    else:
        accepted = True
    assert accepted is (re.fullmatch(AMOUNT_PATTERN.strip("^$"), text, re.ASCII) is not None)
