"""Usage ingestion: validate and price a batch in memory, then charge it in one
transaction with set-based writes (SPEC §4, §5; PERFORMANCE.md "How").

Events are charged against the grants valid at their own timestamp, in the order
of SPEC §4. Within a batch they are applied per team in (timestamp, id) order, so
the same batch gives the same result whatever order its events arrived in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from creditledger.domain import ledger
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.consumption import Allocation, allocate, order_can_matter
from creditledger.domain.errors import EventError, Forbidden, InvalidRequest, PricingError
from creditledger.domain.grants import Grant, UsageScope
from creditledger.domain.pricing import (
    PriceBook,
    TeamPricing,
    charge_for,
    effective,
    effective_team,
)
from creditledger.domain.usage import (
    MAX_AHEAD,
    MAX_EVENTS_PER_BATCH,
    Rejection,
    UsageEvent,
    UsageRecord,
    parse_event,
)
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork
from creditledger.services.retry import with_retry


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    charged_teams: set[str] = field(default_factory=set)


def require_service(principal: Principal) -> None:
    if principal.kind is not TokenKind.SERVICE:
        raise Forbidden("Usage and authorization need a platform service token.")


def ingest_usage(ctx: Context, principal: Principal, raw_events: object) -> IngestResult:
    """POST /v1/usage-events: take the valid events of a batch, reject the rest."""
    require_service(principal)
    if not isinstance(raw_events, list):
        raise InvalidRequest("`events` must be a list.", param="events")
    if len(raw_events) > MAX_EVENTS_PER_BATCH:
        raise InvalidRequest(
            f"A batch holds at most {MAX_EVENTS_PER_BATCH} events; split it.", param="events"
        )
    now = ctx.clock.now()
    events: list[tuple[int, UsageEvent]] = []
    invalid: list[Rejection] = []
    for index, raw in enumerate(raw_events):
        try:
            events.append((index, parse_event(raw, now)))
        except EventError as exc:
            raw_id = raw.get("id") if isinstance(raw, dict) else None
            invalid.append(
                Rejection(index, raw_id if isinstance(raw_id, str) else None, exc.code, exc.message)
            )

    def charge() -> IngestResult:
        result = IngestResult(rejected=list(invalid))
        if events:
            with ctx.uow() as uow:
                _charge_batch(uow, ctx, events, result)
                uow.commit()
        return result

    result = with_retry(charge)
    result.rejected.sort(key=lambda r: r.index)
    return result


def _charge_batch(
    uow: UnitOfWork, ctx: Context, events: list[tuple[int, UsageEvent]], result: IngestResult
) -> None:
    now = ctx.clock.now()
    teams = uow.teams.lock_many([e.team_id for _, e in events])
    events = _drop_unknown_teams(events, teams, result)
    fresh = _drop_duplicates(uow, events, result)
    if not fresh:
        return
    team_ids = sorted({e.team_id for _, e in fresh})
    books = ctx.price_books.current(uow)
    team_pricing = uow.pricing.for_teams(team_ids)
    priced = _price(fresh, books, team_pricing, result)
    closed_before = now - timedelta(seconds=ctx.settings.late_arrival_window_seconds)
    grants = {
        team_id: _open_to_usage(team_grants, closed_before)
        for team_id, team_grants in uow.grants.for_teams(team_ids).items()
    }
    remaining = {g.id: g.remaining for gs in grants.values() for g in gs}
    by_team: dict[str, list[tuple[UsageEvent, int]]] = {}
    for _, event, charge in sorted(priced, key=lambda item: (item[1].timestamp, item[1].id)):
        by_team.setdefault(event.team_id, []).append((event, charge))
    txs: list[tuple[str, ledger.Transaction]] = []
    rows: list[UsageRecord] = []
    moved: list[UsageRecord] = []
    for team_id, items in sorted(by_team.items()):
        replay = _to_replay(uow, items[0][0], now, closed_before, grants[team_id])
        work = _Work(uow, grants[team_id], remaining, txs)
        work.release(replay)
        for usage in _in_time_order(items, replay):
            if isinstance(usage, UsageRecord):
                again = work.recharge(usage)
                if again is not None:
                    moved.append(again)
                continue
            event, charge = usage
            tx_id, allocation = work.charge(event, charge)
            rows.append(
                UsageRecord(
                    event.team_id,
                    event.id,
                    event.fingerprint,
                    event.product,
                    event.model,
                    event.gpu,
                    event.timestamp,
                    charge,
                    allocation.uncovered,
                    tx_id,
                    now,
                    allocation.draws,
                )
            )
        result.charged_teams.add(team_id)
    uow.usage.add(rows)
    uow.usage.reallocate(moved)
    uow.ledger.post_many(txs, now)
    result.accepted += len(rows)


def _to_replay(
    uow: UnitOfWork,
    first: UsageEvent,
    now: datetime,
    closed_before: datetime,
    grants: list[Grant],
) -> list[UsageRecord]:
    """Events already charged that come after ``first`` in (time, id) order, when
    ``first`` is inside the late-arrival window: they are allocated again with it, so
    arrival order inside the window never changes what each grant pays (SPEC §5).

    When every grant is eligible alike for all usage from ``first`` on (no scope, no
    start or end in between), each grant pays the same whatever the order, and nothing
    is read: the usual case costs no query."""
    if first.timestamp < closed_before:
        return []
    if not order_can_matter(grants, first.timestamp, now + MAX_AHEAD):
        return []
    latest = uow.usage.latest(first.team_id)
    if latest is None or (first.timestamp, first.id) > latest:
        return []
    if not order_can_matter(grants, first.timestamp, latest[0]):
        return []
    key = (first.timestamp, first.id)
    return [
        r
        for r in uow.usage.charged_since(first.team_id, first.timestamp)
        if (r.occurred_at, r.event_id) > key and r.charge > 0 and (r.draws or r.uncovered)
    ]


def _in_time_order(
    new: list[tuple[UsageEvent, int]], replay: list[UsageRecord]
) -> list[tuple[UsageEvent, int] | UsageRecord]:
    keyed: list[tuple[tuple[datetime, str], tuple[UsageEvent, int] | UsageRecord]] = [
        ((e.timestamp, e.id), (e, c)) for e, c in new
    ]
    keyed += [((r.occurred_at, r.event_id), r) for r in replay]
    keyed.sort(key=lambda pair: pair[0])
    return [usage for _, usage in keyed]


class _Work:
    """Allocation of one team's usage in a batch, against live remaining credit."""

    def __init__(
        self,
        uow: UnitOfWork,
        grants: list[Grant],
        remaining: dict[str, int],
        txs: list[tuple[str, ledger.Transaction]],
    ) -> None:
        self.uow = uow
        self.grants = grants
        self.open = {g.id for g in grants if g.voided_at is None}
        self.remaining = remaining
        self.txs = txs

    def _allocate(self, charge: int, usage: UsageScope, at: datetime) -> Allocation:
        allocation = allocate(self.grants, charge, usage, at, self.remaining, presorted=True)
        for grant_id, taken in allocation.draws:
            self.remaining[grant_id] -= taken
        return allocation

    def charge(self, event: UsageEvent, charge: int) -> tuple[str | None, Allocation]:
        """Allocate a new event and queue its ledger transaction."""
        if charge == 0:
            return None, Allocation((), 0)
        allocation = self._allocate(charge, event.scope, event.timestamp)
        tx_id = self.uow.new_id("txn")
        description = f"Usage {event.product} {event.model}" + (
            f" on {event.gpu}" if event.gpu else ""
        )
        self.txs.append(
            (
                tx_id,
                ledger.charge_usage(
                    event.team_id,
                    allocation.draws,
                    allocation.uncovered,
                    event.timestamp,
                    description,
                    event.id,
                ),
            )
        )
        return tx_id, allocation

    def _pinned(self, old: UsageRecord) -> tuple[tuple[str, int], ...]:
        """What it drew from grants that are voided or past their window: that stays put."""
        return tuple((g, n) for g, n in old.draws if g not in self.open or g not in self.remaining)

    def release(self, replay: list[UsageRecord]) -> None:
        """Give back what the events to allocate again had drawn, before any is."""
        for old in replay:
            pinned = self._pinned(old)
            for grant_id, nanos in old.draws:
                if (grant_id, nanos) not in pinned:
                    self.remaining[grant_id] += nanos

    def recharge(self, old: UsageRecord) -> UsageRecord | None:
        """Allocate an already charged (and released) event again; queue the
        correction if its split moved."""
        pinned = self._pinned(old)
        rest = old.charge - sum(n for _, n in pinned)
        allocation = self._allocate(rest, old.scope, old.occurred_at)
        draws = pinned + allocation.draws
        if (draws, allocation.uncovered) == (old.draws, old.uncovered):
            return None
        tx = ledger.reallocate_usage(
            old.team_id,
            old.draws,
            old.uncovered,
            draws,
            allocation.uncovered,
            old.occurred_at,
            old.event_id,
        )
        if tx is not None:
            self.txs.append((self.uow.new_id("txn"), tx))
        return replace(old, draws=draws, uncovered=allocation.uncovered)


def _open_to_usage(grants: list[Grant], closed_before: datetime) -> list[Grant]:
    """Leave out grants whose late-arrival window has closed (expired at or before
    ``closed_before``): their rest is written off by the expiry job whenever it runs,
    so late usage arriving after the window never depends on when that was."""
    return [g for g in grants if g.expires_at is None or g.expires_at > closed_before]


def _drop_unknown_teams(
    events: list[tuple[int, UsageEvent]], teams: dict[str, Any], result: IngestResult
) -> list[tuple[int, UsageEvent]]:
    kept = []
    for index, event in events:
        if event.team_id in teams:
            kept.append((index, event))
        else:
            result.rejected.append(
                Rejection(index, event.id, "unknown_team", "No team with this id.")
            )
    return kept


def _drop_duplicates(
    uow: UnitOfWork, events: list[tuple[int, UsageEvent]], result: IngestResult
) -> list[tuple[int, UsageEvent]]:
    """Same (team, id) and payload as before: a duplicate. Another payload: a conflict."""
    stored = uow.usage.fingerprints([(e.team_id, e.id) for _, e in events])
    seen: dict[tuple[str, str], str] = {}
    fresh = []
    for index, event in events:
        key = (event.team_id, event.id)
        previous = stored.get(key) or seen.get(key)
        if previous is None:
            seen[key] = event.fingerprint
            fresh.append((index, event))
        elif previous == event.fingerprint:
            result.duplicates += 1
        else:
            result.rejected.append(
                Rejection(
                    index,
                    event.id,
                    "event_id_conflict",
                    "This event id was already used with a different payload.",
                )
            )
    return fresh


def _price(
    events: list[tuple[int, UsageEvent]],
    books: list[PriceBook],
    team_pricing: dict[str, list[TeamPricing]],
    result: IngestResult,
) -> list[tuple[int, UsageEvent, int]]:
    priced = []
    for index, event in events:
        try:
            charge = charge_for(
                event.quantities,
                event.product,
                event.model,
                event.gpu,
                effective(books, event.timestamp),
                effective_team(team_pricing.get(event.team_id, []), event.timestamp),
            )
        except PricingError as exc:
            result.rejected.append(Rejection(index, event.id, exc.code, exc.message))
            continue
        priced.append((index, event, charge))
    return priced
