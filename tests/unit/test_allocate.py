"""allocate(): one charge split across the eligible grants in consumption order."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditledger.domain.consumption import allocate, in_consumption_order, is_eligible
from creditledger.domain.grants import Grant, Scope, UsageScope
from creditledger.domain.money import dollars
from tests.builders import grant, grant_id, scope
from tests.helpers import at

NOW = at("2026-11-24T12:00")
LLAMA_USAGE = UsageScope("serverless", "llama-3.1-70b")
H100_USAGE = UsageScope("dedicated", None, "h100")


def draws(*pairs: tuple[Grant, str]) -> tuple[tuple[str, int], ...]:
    return tuple((g.id, dollars(amount)) for g, amount in pairs)


def test_a_charge_is_drawn_from_the_first_grant_in_order() -> None:
    promo = grant("promo", "5.00", expires="2026-12-01")
    prepaid = grant("prepaid", "20.00")
    result = allocate([prepaid, promo], dollars("1.25"), LLAMA_USAGE, NOW)
    assert result.draws == draws((promo, "1.25"))
    assert result.uncovered == 0


def test_a_charge_spans_grants_draining_each_before_the_next() -> None:
    first = grant("promo", "1.00", expires="2026-12-01")
    second = grant("promo", "2.00")
    third = grant("prepaid", "10.00")
    result = allocate([third, second, first], dollars("4.50"), LLAMA_USAGE, NOW)
    assert result.draws == draws((first, "1.00"), (second, "2.00"), (third, "1.50"))
    assert result.covered == dollars("4.50")


def test_what_no_grant_covers_is_left_uncovered() -> None:
    only = grant("promo", "1.00", remaining="0.40")
    result = allocate([only], dollars("1.00"), LLAMA_USAGE, NOW)
    assert result.draws == draws((only, "0.40"))
    assert result.uncovered == dollars("0.60")


def test_a_team_without_grants_leaves_the_whole_charge_uncovered() -> None:
    assert allocate([], 7, LLAMA_USAGE, NOW).uncovered == 7


def test_a_charge_that_fills_a_grant_exactly_leaves_the_next_untouched() -> None:
    first = grant("promo", "1.00", expires="2026-12-01")
    second = grant("prepaid", "10.00")
    assert allocate([first, second], dollars("1.00"), LLAMA_USAGE, NOW).draws == draws(
        (first, "1.00")
    )


def test_a_zero_charge_draws_nothing() -> None:
    result = allocate([grant()], 0, LLAMA_USAGE, NOW)
    assert result.draws == ()
    assert result.uncovered == 0


def test_a_negative_charge_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="never negative"):
        allocate([grant()], -1, LLAMA_USAGE, NOW)


@pytest.mark.parametrize(
    ("grant_scope", "usage", "eligible"),
    [
        (scope(products=["serverless"]), LLAMA_USAGE, True),
        (scope(products=["dedicated"]), LLAMA_USAGE, False),
        (scope(models=["llama-3.1-70b", "mixtral"]), LLAMA_USAGE, True),
        (scope(models=["mixtral"]), LLAMA_USAGE, False),
        (scope(products=["serverless"], models=["mixtral"]), LLAMA_USAGE, False),
        (scope(products=["serverless"], models=["llama-3.1-70b"]), LLAMA_USAGE, True),
        (scope(gpus=["h100"]), H100_USAGE, True),
        (scope(gpus=["a100"]), H100_USAGE, False),
        (scope(gpus=["h100"]), LLAMA_USAGE, False),  # usage without a gpu
        (scope(products=["dedicated"], gpus=["h100"]), H100_USAGE, True),
        (scope(models=["llama-3.1-70b"]), H100_USAGE, False),  # usage without a model
    ],
)
def test_a_scoped_grant_pays_only_for_usage_inside_every_listed_dimension(
    grant_scope: Scope, usage: UsageScope, eligible: bool
) -> None:
    scoped = grant("promo", "5.00", scoped=grant_scope)
    fallback = grant("prepaid", "5.00")
    result = allocate([scoped, fallback], dollars("1.00"), usage, NOW)
    assert result.draws[0][0] == (scoped.id if eligible else fallback.id)


def test_a_grant_not_yet_effective_is_skipped() -> None:
    scheduled = grant("promo", "5.00", effective="2026-11-25")
    prepaid = grant("prepaid", "5.00")
    result = allocate([scheduled, prepaid], dollars("1.00"), LLAMA_USAGE, NOW)
    assert result.draws == draws((prepaid, "1.00"))


def test_a_grant_is_usable_from_the_instant_it_becomes_effective() -> None:
    starts_now = grant("promo", "5.00", effective="2026-11-24T12:00")
    assert allocate([starts_now], dollars("1.00"), LLAMA_USAGE, NOW).draws == draws(
        (starts_now, "1.00")
    )


def test_expiry_is_exclusive_a_grant_is_not_usable_at_its_expiry_instant() -> None:
    expires_now = grant("promo", "5.00", expires="2026-11-24T12:00")
    assert allocate([expires_now], dollars("1.00"), LLAMA_USAGE, NOW).uncovered == dollars("1.00")


def test_late_usage_is_charged_against_the_grants_valid_at_its_timestamp() -> None:
    midnight = grant("promo", "5.00", expires="2026-11-25T00:00")
    at_2359 = at("2026-11-24T23:59")
    assert allocate([midnight], dollars("1.00"), LLAMA_USAGE, at_2359).draws == draws(
        (midnight, "1.00")
    )
    assert allocate([midnight], dollars("1.00"), LLAMA_USAGE, at("2026-11-25")).uncovered > 0


def test_a_voided_grant_is_never_drawn() -> None:
    voided = grant("promo", "5.00", voided="2026-11-20")
    prepaid = grant("prepaid", "5.00")
    assert allocate([voided, prepaid], dollars("1.00"), LLAMA_USAGE, NOW).draws == draws(
        (prepaid, "1.00")
    )


def test_a_depleted_grant_is_skipped() -> None:
    empty = grant("promo", "5.00", remaining="0")
    prepaid = grant("prepaid", "5.00")
    assert allocate([empty, prepaid], dollars("1.00"), LLAMA_USAGE, NOW).draws == draws(
        (prepaid, "1.00")
    )


def test_live_remaining_figures_override_the_grants_own() -> None:
    promo = grant("promo", "5.00", expires="2026-12-01")
    prepaid = grant("prepaid", "5.00")
    live = {promo.id: dollars("0.25"), prepaid.id: dollars("5.00")}
    result = allocate([promo, prepaid], dollars("1.00"), LLAMA_USAGE, NOW, remaining=live)
    assert result.draws == draws((promo, "0.25"), (prepaid, "0.75"))


def test_a_grant_missing_from_the_live_figures_counts_as_empty() -> None:
    promo = grant("promo", "5.00")
    result = allocate([promo], dollars("1.00"), LLAMA_USAGE, NOW, remaining={})
    assert result.uncovered == dollars("1.00")


# --- properties ------------------------------------------------------------------------


def cents(n: int) -> str:
    return f"{n // 100}.{n % 100:02d}"


USAGES = [LLAMA_USAGE, H100_USAGE, UsageScope("container")]
TIMES = [at("2026-11-10"), NOW, at("2026-12-05")]


@st.composite
def teams(draw: st.DrawFn) -> list[Grant]:
    numbers = draw(st.lists(st.integers(1, 200), min_size=0, max_size=10, unique=True))
    out = []
    for n in numbers:
        promotional = draw(st.booleans())
        amount_cents = draw(st.integers(1, 1_000))
        remaining_cents = draw(st.integers(0, amount_cents))
        out.append(
            grant(
                "promo" if promotional else "prepaid",
                cents(amount_cents),
                remaining=cents(remaining_cents),
                id=grant_id(n),
                effective=draw(st.sampled_from(["2026-11-01", "2026-11-20"])),
                expires=draw(st.sampled_from([None, "2026-12-01", "2026-12-10"]))
                if promotional
                else None,
                scoped=draw(
                    st.sampled_from([None, scope(models=["llama-3.1-70b"]), scope(gpus=["h100"])])
                )
                if promotional
                else None,
                voided=draw(st.sampled_from([None, None, None, "2026-11-15"])),
            )
        )
    return out


charges = st.integers(min_value=0, max_value=15 * 10**9)


@given(teams(), charges, st.sampled_from(USAGES), st.sampled_from(TIMES))
def test_nothing_is_created_or_lost_by_an_allocation(
    team: list[Grant], charge: int, usage: UsageScope, t: datetime
) -> None:
    result = allocate(team, charge, usage, t)
    assert sum(n for _, n in result.draws) + result.uncovered == charge
    assert result.uncovered >= 0
    by_id = {g.id: g for g in team}
    assert len({gid for gid, _ in result.draws}) == len(result.draws)
    for gid, n in result.draws:
        assert 0 < n <= by_id[gid].remaining
        assert is_eligible(by_id[gid], by_id[gid].remaining, usage, t)


@given(teams(), charges, st.sampled_from(USAGES), st.sampled_from(TIMES))
def test_no_grant_is_drawn_while_an_earlier_eligible_one_has_credit_left(
    team: list[Grant], charge: int, usage: UsageScope, t: datetime
) -> None:
    result = allocate(team, charge, usage, t)
    drawn = dict(result.draws)
    eligible = [g for g in in_consumption_order(team) if is_eligible(g, g.remaining, usage, t)]
    # The drawn grants are a prefix of the eligible ones, in the same order ...
    assert [gid for gid, _ in result.draws] == [g.id for g in eligible[: len(drawn)]]
    # ... and every one of them but the last is drained completely.
    for g in eligible[: max(len(drawn) - 1, 0)]:
        assert drawn[g.id] == g.remaining
    # Anything left uncovered means every eligible grant was emptied.
    if result.uncovered:
        assert all(drawn.get(g.id) == g.remaining for g in eligible)
