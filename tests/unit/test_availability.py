"""Usable credit and the late-arrival window (domain/availability.py)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from creditledger.domain.availability import (
    expiry_due,
    is_usable,
    late_arrival_cutoff,
    open_to_late_usage,
    usable_changes_after,
    usable_credit,
    within_late_arrival_window,
)
from creditledger.domain.grants import Grant, GrantStatus, UsageScope
from creditledger.domain.money import dollars
from tests.builders import grant, scope
from tests.helpers import at

NOW = at("2026-11-24T12:00")
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
LLAMA = UsageScope("serverless", "llama-3.1-70b")
MISTRAL = UsageScope("serverless", "mistral-7b")


def test_credit_is_usable_from_its_start_until_just_before_its_expiry() -> None:
    made = grant("promo", "1.00", effective="2026-11-24T11:00", expires="2026-11-24T13:00")
    assert not is_usable(made, LLAMA, at("2026-11-24T10:59"))
    assert is_usable(made, LLAMA, at("2026-11-24T11:00"))
    assert is_usable(made, LLAMA, at("2026-11-24T12:59"))
    assert not is_usable(made, LLAMA, at("2026-11-24T13:00"))


def test_voided_or_spent_credit_is_not_usable() -> None:
    assert not is_usable(grant("promo", "1.00", voided="2026-11-20"), LLAMA, NOW)
    assert not is_usable(grant("promo", "1.00", remaining="0"), LLAMA, NOW)


def test_live_remaining_overrides_the_stored_figure() -> None:
    made = grant("promo", "1.00")
    assert not is_usable(made, LLAMA, NOW, remaining=0)
    assert is_usable(grant("promo", "1.00", remaining="0"), LLAMA, NOW, remaining=5)


def test_scoped_credit_pays_only_for_usage_in_its_scope_but_counts_for_any_usage() -> None:
    llama_only = grant("promo", "1.00", scoped=scope(models=["llama-3.1-70b"]))
    assert is_usable(llama_only, LLAMA, NOW)
    assert not is_usable(llama_only, MISTRAL, NOW)
    assert is_usable(llama_only, None, NOW)


def test_usable_credit_sums_what_may_pay_for_the_usage() -> None:
    team = [
        grant("promo", "1.00", scoped=scope(models=["llama-3.1-70b"])),
        grant("promo", "2.00", expires="2026-11-24T11:00"),
        grant("promo", "4.00", effective="2026-11-24T13:00"),
        grant("prepaid", "8.00", remaining="0.50"),
    ]
    assert usable_credit(team, LLAMA, NOW) == dollars("1.50")
    assert usable_credit(team, MISTRAL, NOW) == dollars("0.50")
    assert usable_credit(team, None, NOW) == dollars("1.50")
    assert usable_credit([], None, NOW) == 0


grants = st.builds(
    lambda remaining, start, end, voided, scoped: grant(
        "promo",
        "1.00",
        remaining=remaining,
        effective=f"2026-11-24T{start:02d}:00",
        expires=f"2026-11-24T{end:02d}:00" if end > start else None,
        voided="2026-11-24T00:00" if voided else None,
        scoped=scope(models=["llama-3.1-70b"]) if scoped else None,
    ),
    st.sampled_from(["0", "0.25", "1.00"]),
    st.integers(0, 23),
    st.integers(0, 23),
    st.booleans(),
    st.booleans(),
)


@given(made=grants, hour=st.integers(0, 23))
def test_usable_for_any_usage_is_exactly_the_active_status(made: Grant, hour: int) -> None:
    when = at(f"2026-11-24T{hour:02d}:30")
    assert is_usable(made, None, when) is (made.status_at(when) is GrantStatus.ACTIVE)


def test_the_window_reaches_back_from_now() -> None:
    cutoff = late_arrival_cutoff(NOW, HOUR)
    assert cutoff == at("2026-11-24T11:00")
    assert within_late_arrival_window(cutoff, cutoff)
    assert not within_late_arrival_window(cutoff - timedelta(microseconds=1), cutoff)


def test_an_expired_grant_stays_open_to_late_usage_until_its_window_closes() -> None:
    made = grant("promo", "1.00", expires="2026-11-24T11:30")
    assert open_to_late_usage(made, late_arrival_cutoff(at("2026-11-24T12:29"), HOUR))
    assert not open_to_late_usage(made, late_arrival_cutoff(at("2026-11-24T12:30"), HOUR))
    assert open_to_late_usage(grant("prepaid", "1.00"), late_arrival_cutoff(NOW, HOUR))


def test_expiry_is_written_off_only_once_the_window_has_passed() -> None:
    made = grant("promo", "1.00", expires="2026-11-24T11:30")
    assert not expiry_due(made, late_arrival_cutoff(at("2026-11-24T12:29"), HOUR))
    assert expiry_due(made, late_arrival_cutoff(at("2026-11-24T12:30"), HOUR))


def test_no_write_off_is_due_for_spent_voided_or_never_expiring_credit() -> None:
    later = late_arrival_cutoff(at("2026-12-31"), HOUR)
    assert not expiry_due(grant("promo", "1.00", expires="2026-11-24", remaining="0"), later)
    assert not expiry_due(grant("promo", "1.00", expires="2026-11-24", voided="2026-11-23"), later)
    assert not expiry_due(grant("prepaid", "1.00"), later)


@given(made=grants, hour=st.integers(0, 23))
def test_a_grant_is_either_open_to_usage_or_due_or_has_nothing_to_write_off(
    made: Grant, hour: int
) -> None:
    cutoff = at(f"2026-11-24T{hour:02d}:00")
    nothing_left = made.remaining == 0 or made.voided_at is not None
    assert [open_to_late_usage(made, cutoff), expiry_due(made, cutoff)].count(True) <= 1
    assert open_to_late_usage(made, cutoff) or expiry_due(made, cutoff) or nothing_left


_MINUTES = st.integers(min_value=-180, max_value=180)


@given(
    st.lists(
        st.tuples(_MINUTES, st.one_of(st.none(), _MINUTES), st.booleans()),
        min_size=1,
        max_size=6,
    ),
    _MINUTES,
    st.integers(min_value=0, max_value=400),
)
def test_usable_credit_holds_until_the_next_start_or_expiry(
    spans: list[tuple[int, int | None, bool]], now_minute: int, later: int
) -> None:
    grants = [
        grant(
            "promo",
            "1.00",
            effective=(NOW + start * MINUTE).isoformat(),
            expires=None if end is None else (NOW + end * MINUTE).isoformat(),
            scoped=scope(models=["llama-3.1-70b"]) if scoped else None,
        )
        for start, end, scoped in spans
    ]
    now = NOW + now_minute * MINUTE
    until = usable_changes_after(grants, now)
    moment = now + later * MINUTE
    if until is None or moment < until:
        for usage in (LLAMA, MISTRAL, None):
            assert usable_credit(grants, usage, moment) == usable_credit(grants, usage, now)
    if until is not None:
        assert until > now
        assert any(g.effective_at == until or g.expires_at == until for g in grants)
