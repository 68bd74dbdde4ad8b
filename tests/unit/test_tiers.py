"""Rate-limit tiers follow lifetime paid amount."""

from __future__ import annotations

import pytest

from creditledger.domain.money import dollars
from creditledger.domain.tiers import DEFAULT_TIERS, next_level_at, tier_for


@pytest.mark.parametrize(
    ("paid", "level"),
    [
        ("0", 0),
        ("9.99", 0),
        ("10.00", 1),
        ("49.999999999", 1),
        ("50.00", 2),
        ("499.99", 2),
        ("500.00", 3),
        ("5000.00", 4),
        ("1000000.00", 4),
    ],
)
def test_the_tier_is_the_highest_one_the_lifetime_paid_amount_reaches(
    paid: str, level: int
) -> None:
    assert tier_for(dollars(paid), None).level == level


def test_tier_five_is_reached_only_by_an_operator() -> None:
    assert tier_for(dollars("999999999"), None).level == 4
    assert tier_for(0, 5).level == 5


def test_an_operator_override_wins_over_the_paid_amount() -> None:
    assert tier_for(dollars("5000.00"), 1).level == 1


def test_the_default_table_has_the_limits_of_the_spec() -> None:
    assert [(t.level, t.requests_per_minute, t.max_output_tokens) for t in DEFAULT_TIERS[:5]] == [
        (0, 20, 8_192),
        (1, 100, 16_384),
        (2, 1_000, 16_384),
        (3, 5_000, 32_768),
        (4, 10_000, 65_536),
    ]


@pytest.mark.parametrize(("level", "next_at"), [(0, "10.00"), (1, "50.00"), (3, "5000.00")])
def test_the_next_level_is_announced_with_the_amount_that_reaches_it(
    level: int, next_at: str
) -> None:
    assert next_level_at(DEFAULT_TIERS[level]) == dollars(next_at)


def test_there_is_no_self_serve_level_after_four() -> None:
    assert next_level_at(DEFAULT_TIERS[4]) is None
    assert next_level_at(DEFAULT_TIERS[5]) is None
