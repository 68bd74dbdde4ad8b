"""domain/pricing.py: exact prices, one half-to-even rounding per event, the most
specific price, unknown model versus unknown meter, book and team pricing versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditledger.domain.errors import ChargeTooLarge, InvalidRequest, UnknownPrice
from creditledger.domain.pricing import (
    BASIS_POINTS,
    MAX_EVENT_CHARGE,
    Price,
    PriceBook,
    TeamPricing,
    charge_for,
    check_billable,
    check_price,
    divide_half_even,
    effective,
    effective_team,
    prices_change_after,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def book(*prices: Price, since: datetime = T0) -> PriceBook:
    return PriceBook(since, prices)


def p(
    meter: str,
    unit_price: int,
    per_units: int = 1,
    *,
    model: str | None = "llama",
    gpu: str | None = None,
    product: str = "serverless",
) -> Price:
    return Price(product, model, gpu, meter, unit_price, per_units)


LLAMA = book(
    p("input_tokens", 200_000_000, 1_000_000),  # $0.20 per million
    p("output_tokens", 600_000_000, 1_000_000),
    p("gpu_seconds", 2_500_000_000, 3_600, model=None, gpu="h100", product="dedicated"),
    p("requests", 10_000_000, model="llama", gpu="h100", product="dedicated"),
)


def charge(
    quantities: dict[str, int],
    *,
    team: TeamPricing | None = None,
    product: str = "serverless",
    model: str = "llama",
    gpu: str | None = None,
) -> int:
    return charge_for(quantities, product, model, gpu, LLAMA, team)


# --- rounding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "rounded"),
    [(0, 7, 0), (1, 2, 0), (3, 2, 2), (5, 2, 2), (7, 2, 4), (1, 3, 0), (2, 3, 1), (10, 5, 2)],
)
def test_division_rounds_half_to_even(numerator: int, denominator: int, rounded: int) -> None:
    assert divide_half_even(numerator, denominator) == rounded


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=1, max_value=10**15))
def test_division_agrees_with_exact_half_even_rounding(numerator: int, denominator: int) -> None:
    assert divide_half_even(numerator, denominator) == round(Fraction(numerator, denominator))


# --- one event -----------------------------------------------------------------------


def test_37_tokens_at_20_cents_a_million_cost_exactly_7400_nanos() -> None:
    assert charge({"input_tokens": 37}) == 7_400


def test_gpu_seconds_at_2_50_an_hour_are_rounded_once_to_the_nano() -> None:
    def gpu_seconds(quantity: int) -> int:
        return charge({"gpu_seconds": quantity}, product="dedicated", model="ft", gpu="h100")

    assert gpu_seconds(1) == 694_444
    assert gpu_seconds(4) == 2_777_778
    assert gpu_seconds(3_600) == 2_500_000_000


def test_the_meters_of_an_event_are_summed_exactly_then_rounded_once() -> None:
    halves = book(p("a", 1, 2), p("b", 1, 2), p("c", 1, 3))
    assert charge_for({"a": 1, "b": 1}, "serverless", "llama", None, halves, None) == 1
    assert charge_for({"a": 3, "b": 3, "c": 2}, "serverless", "llama", None, halves, None) == 4


def test_zero_quantities_cost_nothing() -> None:
    assert charge({"input_tokens": 0, "output_tokens": 0}) == 0


def test_a_charge_above_the_cap_is_refused_as_an_invalid_quantity() -> None:
    pricey = book(p("requests", MAX_EVENT_CHARGE))
    assert (
        charge_for({"requests": 1}, "serverless", "llama", None, pricey, None) == MAX_EVENT_CHARGE
    )
    with pytest.raises(ChargeTooLarge) as refused:
        charge_for({"requests": 2}, "serverless", "llama", None, pricey, None)
    assert refused.value.code == "invalid_quantity"


# --- which price -----------------------------------------------------------------------


def test_model_and_gpu_beat_model_which_beats_gpu() -> None:
    prices = book(
        p("requests", 1, model="llama", product="dedicated"),
        p("requests", 2, model="llama", gpu="h100", product="dedicated"),
        p("requests", 3, model=None, gpu="h100", product="dedicated"),
    )
    assert prices.price_for("dedicated", "llama", "h100", "requests").unit_price == 2
    assert prices.price_for("dedicated", "llama", "a100", "requests").unit_price == 1
    assert prices.price_for("dedicated", "llama", None, "requests").unit_price == 1
    assert prices.price_for("dedicated", "ft", "h100", "requests").unit_price == 3


def test_prices_are_per_product() -> None:
    with pytest.raises(UnknownPrice) as unknown:
        LLAMA.price_for("container", "llama", None, "input_tokens")
    assert unknown.value.code == "unknown_model"


@pytest.mark.parametrize(
    ("product", "model", "gpu", "meter", "code"),
    [
        ("serverless", "llama", None, "images", "unknown_meter"),
        ("serverless", "gpt-9", None, "input_tokens", "unknown_model"),
        ("dedicated", "ft", "h100", "requests", "unknown_meter"),
        ("dedicated", "ft", "a100", "gpu_seconds", "unknown_model"),
    ],
    ids=["meter of a known model", "model", "meter of a known gpu", "gpu"],
)
def test_a_missing_price_says_whether_the_model_or_the_meter_is_unknown(
    product: str, model: str, gpu: str | None, meter: str, code: str
) -> None:
    with pytest.raises(UnknownPrice) as unknown:
        LLAMA.price_for(product, model, gpu, meter)
    assert unknown.value.code == code


def test_without_any_price_book_every_product_is_unknown() -> None:
    with pytest.raises(UnknownPrice) as unknown:
        charge_for({"input_tokens": 1}, "serverless", "llama", None, None, None)
    assert unknown.value.code == "unknown_product"


@pytest.mark.parametrize(
    ("product", "model", "gpu", "code"),
    [
        ("serverless", "llama", None, None),
        ("dedicated", "any-model", "h100", None),
        ("dedicated", "llama", "h100", None),
        ("serverless", "gpt-9", None, "unknown_model"),
        ("dedicated", "llama", "a100", "unknown_model"),
        ("dedicated", "llama", None, "unknown_model"),
        ("container", "llama", None, "unknown_product"),
    ],
)
def test_billable_is_decided_by_one_rule_that_pricing_follows(
    product: str, model: str, gpu: str | None, code: str | None
) -> None:
    try:
        check_billable(product, model, gpu, LLAMA)
        refused = None
    except UnknownPrice as exc:
        refused = exc.code
    try:
        charge_for({"requests": 1}, product, model, gpu, LLAMA, None)
        priced = None
    except UnknownPrice as exc:
        priced = exc.code if exc.code != "unknown_meter" else None

    assert refused == priced == code


def test_custom_prices_make_a_model_billable_for_that_team() -> None:
    team = TeamPricing(T0, prices=(p("requests", 5, model="private"),))

    check_billable("serverless", "private", None, LLAMA, team)
    assert charge_for({"requests": 2}, "serverless", "private", None, LLAMA, team) == 10
    with pytest.raises(UnknownPrice):
        check_billable("serverless", "private", None, LLAMA, None)


@pytest.mark.parametrize(
    "bad",
    [
        p("requests", 1, product="training"),
        p("requests", 1, model=None, gpu=None),
        p("Requests", 1),
        p("requests", 1, per_units=0),
        p("requests", 1, per_units=10**12 + 1),
    ],
    ids=["product", "no model or gpu", "meter", "per_units zero", "per_units huge"],
)
def test_a_malformed_price_is_refused(bad: Price) -> None:
    with pytest.raises(InvalidRequest):
        check_price(bad, 0)


# --- versions ------------------------------------------------------------------------


def test_the_book_in_force_is_the_latest_that_started_by_then() -> None:
    first, second, third = (book(since=T0 + timedelta(days=d)) for d in (0, 10, 20))
    versions = [first, second, third]
    assert effective(versions, T0 + timedelta(days=15)) is second
    assert effective(versions, T0 + timedelta(days=10)) is second
    assert effective(versions, T0 + timedelta(days=30)) is third


def test_usage_before_the_first_book_is_priced_by_the_book_in_force_when_prices_began() -> None:
    replaced = book(since=T0)
    same_time = book(since=T0)
    later = book(since=T0 + timedelta(days=1))
    assert effective([replaced, same_time, later], T0 - timedelta(days=3)) is same_time
    assert effective([], T0) is None


def test_team_pricing_applies_only_from_its_date() -> None:
    first = TeamPricing(T0, discount_bp=1_000)
    second = TeamPricing(T0 + timedelta(days=5), discount_bp=2_000)
    assert effective_team([first, second], T0 - timedelta(seconds=1)) is None
    assert effective_team([first, second], T0 + timedelta(days=4)) is first
    assert effective_team([first, second], T0 + timedelta(days=5)) is second


def test_a_discount_applies_to_the_exact_sum_before_the_one_rounding() -> None:
    halves = book(p("a", 1), p("b", 1))
    half_off = TeamPricing(T0, discount_bp=5_000)
    # ½ + ½ = 1; discounting each meter and rounding it would give 0 + 0.
    assert charge_for({"a": 1, "b": 1}, "serverless", "llama", None, halves, half_off) == 1
    assert charge({"input_tokens": 37}, team=TeamPricing(T0, discount_bp=1_250)) == 6_475
    assert charge({"input_tokens": 37}, team=TeamPricing(T0, discount_bp=BASIS_POINTS)) == 0


def test_team_custom_prices_win_and_the_list_price_fills_their_gaps() -> None:
    custom = TeamPricing(T0, prices=(p("input_tokens", 100_000_000, 1_000_000),))
    assert charge({"input_tokens": 1_000, "output_tokens": 1_000}, team=custom) == 100_000 + 600_000


def test_custom_prices_can_price_a_model_missing_from_the_book() -> None:
    custom = TeamPricing(T0, prices=(p("requests", 5, model="private-ft"),))
    assert charge({"requests": 3}, team=custom, model="private-ft") == 15


# --- a batch -------------------------------------------------------------------------

PRICES = st.builds(
    p,
    st.sampled_from(["a", "b", "c", "d"]),
    st.integers(min_value=0, max_value=10**7),
    st.sampled_from([1, 2, 3, 7, 1_000, 3_600, 1_000_000, 10**9]),
)
BOOKS = st.lists(PRICES, min_size=1, max_size=4, unique_by=lambda price: price.meter).map(
    lambda prices: book(*prices)
)


@st.composite
def batches(draw: st.DrawFn) -> tuple[PriceBook, TeamPricing | None, list[dict[str, int]]]:
    prices = draw(BOOKS)
    meters = [price.meter for price in prices.prices]
    events = draw(
        st.lists(
            st.dictionaries(
                st.sampled_from(meters), st.integers(min_value=0, max_value=10**6), min_size=1
            ),
            min_size=1,
            max_size=40,
        )
    )
    discount = draw(st.none() | st.integers(min_value=0, max_value=BASIS_POINTS))
    team = None if discount is None else TeamPricing(T0, discount_bp=discount)
    return prices, team, events


def exact(prices: PriceBook, team: TeamPricing | None, quantities: dict[str, int]) -> Fraction:
    total = sum(
        (
            q * prices.price_for("serverless", "llama", None, m).per_unit
            for m, q in quantities.items()
        ),
        Fraction(0),
    )
    if team is not None:
        total *= Fraction(BASIS_POINTS - team.discount_bp, BASIS_POINTS)
    return total


@given(batches())
def test_a_batch_costs_the_exact_sum_within_half_a_nano_per_event(
    batch: tuple[PriceBook, TeamPricing | None, list[dict[str, int]]],
) -> None:
    prices, team, events = batch
    charges = [charge_for(q, "serverless", "llama", None, prices, team) for q in events]
    exacts = [exact(prices, team, q) for q in events]

    for charged, value in zip(charges, exacts, strict=True):
        assert abs(charged - value) <= Fraction(1, 2)
        if value.denominator == 2:  # exactly half way: to the even neighbour
            assert charged % 2 == 0
        else:
            assert charged == round(value)
    assert abs(sum(charges) - sum(exacts, Fraction(0))) <= Fraction(len(events), 2)


@given(
    st.lists(st.integers(min_value=-100, max_value=100), min_size=1, max_size=5),
    st.lists(st.integers(min_value=-100, max_value=100), max_size=3),
    st.integers(min_value=-100, max_value=100),
    st.integers(min_value=0, max_value=300),
)
def test_the_prices_in_force_hold_until_the_next_version_takes_effect(
    books_at: list[int], team_at: list[int], now_hour: int, later: int
) -> None:
    hour = timedelta(hours=1)
    books = [book(p("tokens", 10_000_000), since=T0 + h * hour) for h in books_at]
    team = [TeamPricing(T0 + h * hour, discount_bp=1_000) for h in team_at]
    now = T0 + now_hour * hour
    until = prices_change_after(books, team, now)
    moment = now + later * hour
    if until is None or moment < until:
        assert effective(books, moment) is effective(books, now)
        assert effective_team(team, moment) is effective_team(team, now)
    if until is not None:
        assert until > now
