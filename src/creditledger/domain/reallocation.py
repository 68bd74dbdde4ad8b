"""Charging one team's new usage in time order, re-allocating what a late event moves
(arrival order never changes the result for events inside the window).

A late event is charged as if it had arrived in (timestamp, id) order: the events
already charged after it give back what they drew, then every event (the new ones
and those already charged) is allocated again in that order against the grants
valid at its own timestamp. An already charged event whose split moved
gets a ledger adjustment; its charge never changes, so no credit is created or lost.

What an already charged event drew from a grant that can no longer pay for usage
(voided, or closed by its late-arrival window: left out of ``grants``) stays where
it is: that credit is gone (written off), so it is not handed to anyone else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from msgspec.structs import replace

from creditledger.domain import ledger
from creditledger.domain.availability import within_late_arrival_window
from creditledger.domain.consumption import Allocation, allocate, in_consumption_order
from creditledger.domain.grants import Grant, UsageScope
from creditledger.domain.money import Nanos
from creditledger.domain.usage import UsageEvent, UsageRecord
from creditledger.domain.values import Value

Draws = tuple[tuple[str, Nanos], ...]
"""(grant id, nanos) in the order they were drawn."""


class NewCharge(Value, frozen=True):
    """A new event and what it costs."""

    event: UsageEvent
    charge: Nanos


class Charged(Value, frozen=True):
    """A new event's allocation: what each grant pays, and what stays unpaid."""

    event: UsageEvent
    charge: Nanos
    allocation: Allocation


class Reallocated(Value, frozen=True):
    """An already charged event whose split moved: its record with the new split, and
    the adjustment that moves the money (None when only the order of its draws moved)."""

    record: UsageRecord
    adjustment: ledger.Transaction | None


@dataclass(frozen=True, slots=True)
class TimeOrderedCharges:
    """What charging a team's new events did, step by step in (timestamp, id) order."""

    steps: tuple[Charged | Reallocated, ...]

    @property
    def charged(self) -> list[Charged]:
        return [s for s in self.steps if isinstance(s, Charged)]

    @property
    def reallocated(self) -> list[Reallocated]:
        return [s for s in self.steps if isinstance(s, Reallocated)]


def charge_in_time_order(
    grants: Sequence[Grant],
    charged_after: Sequence[UsageRecord],
    new: Sequence[NewCharge],
    *,
    presorted: bool = False,
) -> TimeOrderedCharges:
    """Allocate ``new`` and re-allocate ``charged_after``, all in (timestamp, id) order.

    ``grants`` are the team's grants open to usage (``availability.open_to_late_usage``)
    with ``remaining`` as stored, so including what ``charged_after`` drew;
    ``presorted`` when the caller holds them in the order of consumption already (as
    ``UsageReads.grants`` are). ``charged_after`` are the team's already charged events
    that come after the first late one (empty when nothing is to be re-allocated).
    """
    ordered = list(grants) if presorted else in_consumption_order(grants)
    movable = {g.id for g in ordered if g.voided_at is None}
    remaining = {g.id: g.remaining for g in ordered}
    for record in charged_after:
        for grant_id, nanos in _split(record.draws, movable)[1]:
            remaining[grant_id] += nanos

    def draw(charge: Nanos, usage: UsageScope, at: datetime) -> Allocation:
        allocation = allocate(ordered, charge, usage, at, remaining, presorted=True)
        for grant_id, taken in allocation.draws:
            remaining[grant_id] -= taken
        return allocation

    steps: list[Charged | Reallocated] = []
    for item in _in_time_order(new, charged_after):
        if isinstance(item, NewCharge):
            event = item.event
            steps.append(
                Charged(event, item.charge, draw(item.charge, event.scope, event.timestamp))
            )
            continue
        kept, _ = _split(item.draws, movable)
        allocation = draw(item.charge - sum(n for _, n in kept), item.scope, item.occurred_at)
        moved = replace(item, draws=kept + allocation.draws, uncovered=allocation.uncovered)
        if (moved.draws, moved.uncovered) != (item.draws, item.uncovered):
            steps.append(Reallocated(moved, _adjustment(item, moved)))
    return TimeOrderedCharges(tuple(steps))


def first_late_event(new: Sequence[NewCharge], cutoff: datetime) -> UsageEvent | None:
    """The earliest new event inside the late-arrival window (stamped at or after
    ``cutoff``), in (timestamp, id) order: the already charged events after it are the
    ones a late arrival can re-allocate. None when every new event is older."""
    inside = [c.event for c in new if within_late_arrival_window(c.event.timestamp, cutoff)]
    return min(inside, key=lambda e: (e.timestamp, e.id), default=None)


def after_late_event(late: UsageEvent, records: Iterable[UsageRecord]) -> list[UsageRecord]:
    """Of ``records``, the charged events that come after ``late`` in (timestamp, id)
    order and paid anything (an event that cost nothing has nothing to move)."""
    key = (late.timestamp, late.id)
    return [
        r
        for r in records
        if (r.occurred_at, r.event_id) > key and r.charge > 0 and (r.draws or r.uncovered)
    ]


def _split(draws: Draws, movable: set[str]) -> tuple[Draws, Draws]:
    """(draws that stay put, draws that are allocated again)."""
    kept = tuple((g, n) for g, n in draws if g not in movable)
    return kept, tuple((g, n) for g, n in draws if g in movable)


def _at(charge: NewCharge) -> tuple[datetime, str]:
    return charge.event.timestamp, charge.event.id


def _in_time_order(
    new: Sequence[NewCharge], charged_after: Sequence[UsageRecord]
) -> Sequence[NewCharge | UsageRecord]:
    if not charged_after:  # the usual case: nothing to re-allocate
        return sorted(new, key=_at)
    keyed: list[tuple[tuple[datetime, str], NewCharge | UsageRecord]] = [(_at(c), c) for c in new]
    keyed += [((r.occurred_at, r.event_id), r) for r in charged_after]
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]


def _adjustment(before: UsageRecord, after: UsageRecord) -> ledger.Transaction | None:
    return ledger.reallocate_usage(
        before.team_id,
        before.draws,
        before.uncovered,
        after.draws,
        after.uncovered,
        before.occurred_at,
        before.event_id,
    )
