"""Re-allocation of usage after a late event (arrival order inside the window
never changes what each grant pays)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from creditledger.domain import ledger
from creditledger.domain.consumption import in_consumption_order, order_can_matter
from creditledger.domain.grants import Grant, GrantKind, GrantSource, Scope
from creditledger.domain.ledger import EntryType, reallocate_usage, unpaid_account
from creditledger.domain.money import dollars
from creditledger.domain.reallocation import (
    Charged,
    Draws,
    NewCharge,
    TimeOrderedCharges,
    after_late_event,
    charge_in_time_order,
    first_late_event,
)
from creditledger.domain.usage import UsageEvent, UsageRecord, decode_draws, encode_draws
from tests.builders import grant, grant_id
from tests.helpers import at

START, END = at("2026-11-24T12:00"), at("2026-11-24T13:00")


def test_unlimited_grants_valid_throughout_make_the_order_irrelevant() -> None:
    grants = [grant("promo", "1.00", expires="2026-12-01"), grant("prepaid", "5.00")]
    assert not order_can_matter(grants, START, END)


def test_a_scoped_grant_makes_the_order_matter() -> None:
    llama = Scope(models=frozenset({"llama"}))
    assert order_can_matter([grant("promo", "1.00", scoped=llama)], START, END)


@pytest.mark.parametrize(
    ("effective", "expires", "matters"),
    [
        ("2026-11-24T12:30", None, True),
        (None, "2026-11-24T12:30", True),
        (None, "2026-11-24T13:00", True),
        (None, "2026-11-24T12:00", False),
        ("2026-11-24T13:30", None, False),
    ],
)
def test_a_grant_starting_or_ending_in_between_makes_the_order_matter(
    effective: str | None, expires: str | None, matters: bool
) -> None:
    made = grant("promo", "1.00", effective=effective or "2026-11-01", expires=expires)
    assert order_can_matter([made], START, END) is matters


def test_a_voided_grant_is_ineligible_for_all_usage_alike() -> None:
    voided = grant("promo", "1.00", effective="2026-11-24T12:30", voided="2026-11-24T12:40")
    assert not order_can_matter([voided], START, END)


def test_a_reallocation_moves_cost_between_grants_and_unpaid_and_balances() -> None:
    tx = reallocate_usage("team_a", (("g1", 100),), 50, (("g2", 150),), 0, START, "evt")
    assert tx is not None and tx.type is EntryType.ADJUSTMENT
    moves = {p.account: p.amount for p in tx.postings}
    assert moves == {"grant:g1": 100, "grant:g2": -150, unpaid_account("team_a"): 50}
    assert sum(moves.values()) == 0


def test_a_reallocation_that_changes_nothing_writes_nothing() -> None:
    assert reallocate_usage("t", (("g1", 10),), 5, (("g1", 10),), 5, START, "e") is None


def test_draws_survive_their_storage_form() -> None:
    draws = (("grant_0a", 7_400), ("grant_0b", 1))
    assert decode_draws(encode_draws(draws)) == draws
    assert decode_draws(None) == () and decode_draws("") == ()


# --- charge_in_time_order: the pure re-allocation ------------------------------------

LLAMA_ONLY = Scope(models=frozenset({"llama-3.1-70b"}))
MODELS = ("llama-3.1-70b", "mistral-7b")


def usage(event_id: str, when: str, amount: str, model: str = MODELS[0]) -> NewCharge:
    """A new event of ``amount`` dollars at ``when`` (as for :func:`at`)."""
    return charge_of(event_id, at(when), dollars(amount), model)


def charge_of(event_id: str, when: datetime, nanos: int, model: str = MODELS[0]) -> NewCharge:
    stamp = UsageEvent(event_id, "team_test", "serverless", model, None, when, {}, event_id)
    return NewCharge(stamp, nanos)


def as_record(charged: Charged) -> UsageRecord:
    e, allocation = charged.event, charged.allocation
    return UsageRecord(
        team_id=e.team_id,
        event_id=e.id,
        fingerprint=e.fingerprint,
        product=e.product,
        model=e.model,
        gpu=e.gpu,
        occurred_at=e.timestamp,
        charge=charged.charge,
        uncovered=allocation.uncovered,
        transaction_id=None,
        received_at=e.timestamp,
        draws=allocation.draws,
    )


def after_charging(grants: list[Grant], records: list[UsageRecord]) -> list[Grant]:
    """The grants as stored once ``records`` were charged."""
    spent: dict[str, int] = {}
    for r in records:
        for drawn_from, nanos in r.draws:
            spent[drawn_from] = spent.get(drawn_from, 0) + nanos
    return [replace(g, remaining=g.remaining - spent.get(g.id, 0)) for g in grants]


def splits(result: TimeOrderedCharges) -> dict[str, tuple[Draws, int]]:
    out = {c.event.id: (c.allocation.draws, c.allocation.uncovered) for c in result.charged}
    out |= {r.record.event_id: (r.record.draws, r.record.uncovered) for r in result.reallocated}
    return out


def test_a_late_event_is_charged_as_if_it_had_arrived_in_time_order() -> None:
    expiring = grant("promo", "1.00", expires="2026-11-24T12:20")
    prepaid = grant("prepaid", "1.00")
    first = [
        as_record(c)
        for c in charge_in_time_order(
            [expiring, prepaid], [], [usage("b", "2026-11-24T12:30", "1.00")]
        ).charged
    ]
    assert first[0].draws == ((prepaid.id, dollars("1.00")),)

    result = charge_in_time_order(
        after_charging([expiring, prepaid], first), first, [usage("a", "2026-11-24T12:10", "2.00")]
    )

    assert splits(result) == {
        "a": (((expiring.id, dollars("1.00")), (prepaid.id, dollars("1.00"))), 0),
        "b": ((), dollars("1.00")),
    }
    [moved] = result.reallocated
    assert moved.adjustment is not None
    assert {p.account: p.amount for p in moved.adjustment.postings} == {
        f"grant:{prepaid.id}": dollars("1.00"),
        unpaid_account("team_test"): -dollars("1.00"),
    }


def test_an_event_whose_split_does_not_move_is_left_alone() -> None:
    prepaid = grant("prepaid", "5.00")
    first = [
        as_record(c)
        for c in charge_in_time_order(
            [prepaid], [], [usage("b", "2026-11-24T12:30", "1.00")]
        ).charged
    ]
    result = charge_in_time_order(
        after_charging([prepaid], first), first, [usage("a", "2026-11-24T12:10", "1.00")]
    )
    assert result.reallocated == []
    assert [c.event.id for c in result.charged] == ["a"]


def stored(
    event_id: str, when: str, charge: int, uncovered: int, draws: tuple[tuple[str, int], ...]
) -> UsageRecord:
    """An event as charged before: on the first model, at ``when``."""
    return UsageRecord(
        team_id="team_test",
        event_id=event_id,
        fingerprint=event_id,
        product="serverless",
        model=MODELS[0],
        gpu=None,
        occurred_at=at(when),
        charge=charge,
        uncovered=uncovered,
        transaction_id=None,
        received_at=START,
        draws=draws,
    )


def test_what_an_event_drew_from_a_voided_grant_stays_put() -> None:
    voided = grant("promo", "1.00", remaining="0", voided="2026-11-24T12:40")
    prepaid = grant("prepaid", "1.00", remaining="0.50")
    drawn = stored(
        "b",
        "2026-11-24T12:30",
        dollars("1.00"),
        0,
        ((voided.id, dollars("0.50")), (prepaid.id, dollars("0.50"))),
    )
    result = charge_in_time_order(
        [voided, prepaid], [drawn], [usage("a", "2026-11-24T12:10", "1.00")]
    )
    assert splits(result) == {
        "a": (((prepaid.id, dollars("1.00")),), 0),
        "b": (((voided.id, dollars("0.50")),), dollars("0.50")),
    }


def test_what_an_event_drew_from_a_grant_closed_by_its_window_stays_put() -> None:
    prepaid = grant("prepaid", "1.00", remaining="0.50")
    closed = "grant_closed"  # expired long ago: the caller leaves it out of the grants
    drawn = stored(
        "b",
        "2026-11-24T12:30",
        dollars("1.00"),
        0,
        ((closed, dollars("0.50")), (prepaid.id, dollars("0.50"))),
    )
    result = charge_in_time_order([prepaid], [drawn], [usage("a", "2026-11-24T12:10", "1.00")])
    assert splits(result)["b"] == (((closed, dollars("0.50")),), dollars("0.50"))


def test_the_first_late_event_is_the_earliest_one_inside_the_window() -> None:
    cutoff = at("2026-11-24T11:00")
    new = [
        usage("late", "2026-11-24T11:50", "1.00"),
        usage("too-old", "2026-11-24T10:00", "1.00"),
        usage("later", "2026-11-24T11:55", "1.00"),
    ]
    found = first_late_event(new, cutoff)
    assert found is not None and found.id == "late"
    assert first_late_event(new[1:2], cutoff) is None


def test_only_events_after_the_late_one_that_paid_something_are_charged_again() -> None:
    late = usage("m", "2026-11-24T12:10", "1.00").event
    records = [
        stored(eid, when, charge, unc, dr)
        for eid, when, charge, unc, dr in [
            ("a", "2026-11-24T12:10", 5, 0, (("g", 5),)),  # same time, smaller id: before
            ("z", "2026-11-24T12:10", 5, 0, (("g", 5),)),  # same time, larger id: after
            ("free", "2026-11-24T12:20", 0, 0, ()),
            ("unpaid", "2026-11-24T12:30", 5, 5, ()),
        ]
    ]
    assert [r.event_id for r in after_late_event(late, records)] == ["z", "unpaid"]


# --- The property: re-allocating equals allocating everything in time order ------------

MINUTES = st.integers(0, 59)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Grant], list[NewCharge], list[NewCharge]]:
    """Grants that start and end within the hour, events spread over it, and which of
    them arrived first (already charged) and which arrive late, in one batch."""
    grants = []
    for n in range(draw(st.integers(0, 5))):
        start = draw(st.integers(0, 40))
        end = draw(st.one_of(st.none(), st.integers(start + 1, 70)))
        grants.append(
            Grant(
                id=grant_id(n),
                team_id="team_test",
                kind=GrantKind.PROMOTIONAL if draw(st.booleans()) else GrantKind.PREPAID,
                source=GrantSource.MANUAL,
                amount=dollars("10.00"),
                remaining=draw(st.integers(0, 3_000)),
                scope=LLAMA_ONLY if draw(st.booleans()) else None,
                effective_at=START + timedelta(minutes=start),
                expires_at=None if end is None else START + timedelta(minutes=end),
                voided_at=None,
                created_at=START,
            )
        )
    events = [
        charge_of(
            f"e{n:02d}",
            START + timedelta(minutes=draw(MINUTES)),
            draw(st.integers(0, 1_500)),
            draw(st.sampled_from(MODELS)),
        )
        for n in range(draw(st.integers(1, 8)))
    ]
    arrived_late = draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    first = [e for e, late in zip(events, arrived_late, strict=True) if not late]
    late = [e for e, late in zip(events, arrived_late, strict=True) if late]
    return grants, first, late


def moves(txs: list[ledger.Transaction]) -> dict[str, int]:
    total: dict[str, int] = {}
    for tx in txs:
        for p in tx.postings:
            total[p.account] = total.get(p.account, 0) + p.amount
    return {a: n for a, n in total.items() if n}


@settings(max_examples=300)
@given(scenario=scenarios())
def test_reallocating_late_events_equals_allocating_all_in_time_order_from_scratch(
    scenario: tuple[list[Grant], list[NewCharge], list[NewCharge]],
) -> None:
    grants, first, late = scenario
    from_scratch = splits(charge_in_time_order(grants, [], first + late))

    records = [as_record(c) for c in charge_in_time_order(grants, [], first).charged]
    result = charge_in_time_order(
        after_charging(grants, records),
        after_late_event(min((c.event for c in late), key=lambda e: (e.timestamp, e.id)), records)
        if late
        else [],
        late,
    )

    final = {r.event_id: (r.draws, r.uncovered) for r in records} | splits(result)
    assert final == from_scratch
    # Nothing created or lost: the ledger moves each grant by exactly what its events
    # now draw, and each event's charge is split in full.
    charges = {c.event.id: c.charge for c in first + late}
    assert all(sum(n for _, n in d) + u == charges[e] for e, (d, u) in final.items())
    txs = [
        ledger.charge_usage("team_test", r.draws, r.uncovered, r.occurred_at, "Usage", r.event_id)
        for r in records
    ]
    txs += [
        ledger.charge_usage(
            "team_test",
            c.allocation.draws,
            c.allocation.uncovered,
            c.event.timestamp,
            "Usage",
            c.event.id,
        )
        for c in result.charged
    ]
    txs += [r.adjustment for r in result.reallocated if r.adjustment is not None]
    expected = moves(
        [
            ledger.charge_usage("team_test", d, u, START, "Usage", e)
            for e, (d, u) in final.items()
            if charges[e]
        ]
    )
    assert moves(txs) == expected
    assert all(g.remaining + expected.get(f"grant:{g.id}", 0) >= 0 for g in grants)


@settings(max_examples=200)
@given(scenario=scenarios(), data=st.data())
def test_grants_held_in_the_order_of_consumption_are_charged_as_grants_in_any_order(
    scenario: tuple[list[Grant], list[NewCharge], list[NewCharge]], data: st.DataObject
) -> None:
    """``presorted`` only skips the sort: the caller's sorted grants give what grants in
    any order give."""
    grants, first, late = scenario
    shuffled = data.draw(st.permutations(grants))
    sorted_ = in_consumption_order(grants)
    events = data.draw(st.permutations(first + late))
    assert charge_in_time_order(sorted_, [], events, presorted=True) == charge_in_time_order(
        shuffled, [], events
    )
