"""The order of consumption, against hand-written lists of ids.

Key 6 ("smaller grant id last") is read literally: ids sort descending as the
last tie-break (docs/decisions/0001).
"""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from creditledger.domain.consumption import consumption_order_key, in_consumption_order
from creditledger.domain.grants import Grant
from tests.builders import grant, grant_id, ids, scope

LLAMA = scope(models=["llama-3.1-70b"])


def shuffled(grants: list[Grant], seed: int = 7) -> list[Grant]:
    copy = list(grants)
    random.Random(seed).shuffle(copy)
    return copy


def test_the_five_buckets_come_in_the_order_of_the_spec() -> None:
    promo_expiring_limited = grant(id="grant_a1", expires="2026-12-31", scoped=LLAMA)
    promo_expiring_unlimited = grant(id="grant_a2", expires="2026-12-01")
    promo_forever_limited = grant(id="grant_a3", scoped=LLAMA)
    promo_forever_unlimited = grant(id="grant_a4")
    prepaid = grant("prepaid", id="grant_a5")

    ordered = in_consumption_order(
        [
            prepaid,
            promo_forever_unlimited,
            promo_expiring_unlimited,
            promo_forever_limited,
            promo_expiring_limited,
        ]
    )

    assert ids(ordered) == ["grant_a1", "grant_a2", "grant_a3", "grant_a4", "grant_a5"]


def test_promotional_expiring_scoped_credit_is_drawn_first() -> None:
    scoped_later = grant(id="grant_z9", expires="2027-06-01", scoped=LLAMA)
    unscoped_sooner = grant(id="grant_z1", expires="2026-11-30")
    assert ids(in_consumption_order([unscoped_sooner, scoped_later])) == ["grant_z9", "grant_z1"]


def test_promotional_credit_comes_before_prepaid_whatever_their_dates() -> None:
    prepaid_old = grant("prepaid", id="grant_b1", effective="2020-01-01")
    promo_new = grant(id="grant_b2", effective="2026-11-20")
    assert ids(in_consumption_order([prepaid_old, promo_new])) == ["grant_b2", "grant_b1"]


def test_expiring_before_non_expiring_outranks_limited_before_unlimited() -> None:
    forever_limited = grant(id="grant_c1", scoped=LLAMA)
    expiring_unlimited = grant(id="grant_c2", expires="2030-01-01")
    assert ids(in_consumption_order([forever_limited, expiring_unlimited])) == [
        "grant_c2",
        "grant_c1",
    ]


def test_within_a_bucket_the_earlier_expiry_is_drawn_first() -> None:
    late = grant(id="grant_d1", expires="2027-01-01", effective="2026-01-01")
    soon = grant(id="grant_d2", expires="2026-12-01", effective="2026-11-01")
    middle = grant(id="grant_d3", expires="2026-12-15", effective="2025-01-01")
    assert ids(in_consumption_order([late, soon, middle])) == ["grant_d2", "grant_d3", "grant_d1"]


def test_on_equal_expiry_the_earlier_effective_date_is_drawn_first() -> None:
    newer = grant(id="grant_e1", expires="2026-12-01", effective="2026-11-10")
    older = grant(id="grant_e2", expires="2026-12-01", effective="2026-11-02")
    assert ids(in_consumption_order([newer, older])) == ["grant_e2", "grant_e1"]


def test_on_equal_dates_the_smaller_id_is_drawn_last() -> None:
    small, middle, large = grant_id(1), grant_id(2), grant_id(3)
    tied = [grant(id=i, expires="2026-12-01") for i in (middle, small, large)]
    assert ids(in_consumption_order(tied)) == [large, middle, small]


def test_prepaid_grants_tie_break_on_effective_date_then_id_descending() -> None:
    first = grant("prepaid", id="grant_f1", effective="2026-10-01")
    same_day_small = grant("prepaid", id="grant_f2", effective="2026-11-01")
    same_day_large = grant("prepaid", id="grant_f3", effective="2026-11-01")
    assert ids(in_consumption_order([same_day_small, first, same_day_large])) == [
        "grant_f1",
        "grant_f3",
        "grant_f2",
    ]


def test_a_realistic_team_sorts_into_the_hand_written_order() -> None:
    team = [
        grant("prepaid", "20.00", id="grant_p2", effective="2026-11-05"),
        grant("prepaid", "10.00", id="grant_p1", effective="2026-11-05"),
        grant("promo", "3.00", id="grant_signup", expires="2026-12-24"),
        grant("promo", "5.00", id="grant_llama", expires="2026-12-08", scoped=LLAMA),
        grant("promo", "25.00", id="grant_h100", scoped=scope(gpus=["h100"])),
        grant("promo", "2.00", id="grant_thanks"),
        grant("promo", "1.00", id="grant_old_promo", expires="2026-12-01"),
        grant("promo", "1.00", id="grant_llama2", expires="2026-12-08", scoped=LLAMA),
    ]
    expected = [
        "grant_llama2",  # limited, expiring 12-08, same dates as grant_llama: larger id first
        "grant_llama",
        "grant_old_promo",  # unlimited expiring 12-01
        "grant_signup",  # unlimited expiring 12-24
        "grant_h100",  # non-expiring limited
        "grant_thanks",  # non-expiring unlimited
        "grant_p2",  # prepaid, same effective date: larger id first
        "grant_p1",
    ]
    for seed in range(5):
        assert ids(in_consumption_order(shuffled(team, seed))) == expected


# --- properties: the key is a strict total order over distinct grants ---------------

DATES = ["2026-11-01", "2026-11-15", "2026-12-01"]


@st.composite
def grants(draw: st.DrawFn, min_size: int = 2, max_size: int = 12) -> list[Grant]:
    """Grants drawn from few values on every key, so ties are the common case."""
    numbers = draw(st.lists(st.integers(1, 60), min_size=min_size, max_size=max_size, unique=True))
    out = []
    for n in numbers:
        promotional = draw(st.booleans())
        out.append(
            grant(
                "promo" if promotional else "prepaid",
                id=grant_id(n),
                effective=draw(st.sampled_from(DATES[:2])),
                expires=draw(st.sampled_from([None, "2026-12-20", "2027-01-10"]))
                if promotional
                else None,
                scoped=draw(st.sampled_from([None, LLAMA])) if promotional else None,
            )
        )
    return out


@given(grants(min_size=2, max_size=2))
def test_any_two_distinct_grants_compare_one_way_only(pair: list[Grant]) -> None:
    a, b = (consumption_order_key(g) for g in pair)
    assert (a < b) != (b < a)
    assert a != b


@given(grants(min_size=3, max_size=3))
def test_the_order_is_transitive(trio: list[Grant]) -> None:
    a, b, c = (consumption_order_key(g) for g in trio)
    for x, y, z in ((a, b, c), (a, c, b), (b, a, c), (b, c, a), (c, a, b), (c, b, a)):
        if x < y and y < z:
            assert x < z


@given(grants(), st.randoms(use_true_random=False))
def test_the_order_does_not_depend_on_the_input_order(
    team: list[Grant], rnd: random.Random
) -> None:
    other = list(team)
    rnd.shuffle(other)
    assert ids(in_consumption_order(team)) == ids(in_consumption_order(other))


@given(grants())
def test_sorted_grants_respect_every_key_in_turn(team: list[Grant]) -> None:
    ordered = in_consumption_order(team)
    for earlier, later in itertools.pairwise(ordered):
        assert consumption_order_key(earlier) < consumption_order_key(later)
        rank_e = (earlier.kind.value != "promotional", earlier.expires_at is None)
        rank_l = (later.kind.value != "promotional", later.expires_at is None)
        assert rank_e <= rank_l
