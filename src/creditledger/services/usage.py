"""Usage ingestion: validate and price a batch in memory, then charge it in one
transaction with set-based writes (bench/README.md says why).

Events are charged against the grants valid at their own timestamp, in the order
of consumption. Within a batch they are applied per team in (timestamp, id) order, so
the same batch gives the same result whatever order its events arrived in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from creditledger.domain import ledger
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.availability import late_arrival_cutoff, open_to_late_usage
from creditledger.domain.consumption import order_can_matter
from creditledger.domain.errors import (
    CreditLedgerError,
    EventError,
    Forbidden,
    InvalidRequest,
    PricingError,
    ServiceUnavailable,
)
from creditledger.domain.grants import Grant
from creditledger.domain.money import Nanos
from creditledger.domain.pricing import (
    PriceBook,
    TeamPricing,
    charge_for,
    effective,
    effective_team,
)
from creditledger.domain.reallocation import (
    Charged,
    NewCharge,
    Reallocated,
    TimeOrderedCharges,
    after_late_event,
    charge_in_time_order,
    first_late_event,
)
from creditledger.domain.usage import (
    MAX_AHEAD,
    MAX_EVENTS_PER_BATCH,
    Rejection,
    UsageEvent,
    UsageRecord,
    parse_event,
    single_meter,
)
from creditledger.services import notices
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork
from creditledger.services.retry import with_retry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    charged_teams: set[str] = field(default_factory=set)
    recharging: frozenset[str] = frozenset()
    """The charged teams with auto-recharge on: checked once the charge has committed."""
    charged_requests: dict[str, list[str]] = field(default_factory=dict)
    """The ids of the events charged by this batch, by team: their holds end."""
    duplicate_indices: list[int] = field(default_factory=list)


def require_service(principal: Principal) -> None:
    if principal.kind is not TokenKind.SERVICE:
        raise Forbidden("Usage and authorization need a platform service token.")


def ingest_usage(ctx: Context, principal: Principal, raw_events: object) -> IngestResult:
    """POST /v1/usage-events: take the valid events of a batch, reject the rest."""
    return charge_read(ctx, read_batch(ctx, principal, raw_events))


@dataclass(slots=True)
class ReadBatches:
    """Batches read and their events parsed, before anything is locked or charged."""

    outcomes: list[IngestResult | CreditLedgerError]
    spans: list[tuple[int, int] | None]
    """Per batch, where its events start among all and how many it has (None: refused)."""
    events: list[tuple[int, UsageEvent]]
    invalid: list[Rejection]


def read_batch(ctx: Context, principal: Principal, raw_events: object) -> ReadBatches:
    """One batch read and parsed (:func:`read_batches`); raises what refuses it whole."""
    read = read_batches(ctx, [(principal, raw_events)])
    (outcome,) = read.outcomes
    if isinstance(outcome, CreditLedgerError):
        raise outcome
    return read


def charge_read(ctx: Context, read: ReadBatches) -> IngestResult:
    """Charge one batch read by :func:`read_batch`."""
    (outcome,) = charge_batches(ctx, read)
    assert isinstance(outcome, IngestResult)
    return outcome


def ingest_together(
    ctx: Context, batches: Sequence[tuple[Principal, object]]
) -> list[IngestResult | CreditLedgerError]:
    """Several batches charged in one transaction, with one commit: concurrent small
    POSTs grouped by the server. Each gets its own result, or the error that refused it
    alone (not a service token, not a list, too many events); if the transaction fails,
    this raises and none of them was stored."""
    return charge_batches(ctx, read_batches(ctx, batches))


def read_batches(ctx: Context, batches: Sequence[tuple[Principal, object]]) -> ReadBatches:
    """Check each batch and parse its events: what needs no lock and no database, so a
    batch waiting for its turn can do it meanwhile."""
    now = ctx.clock.now()
    read = ReadBatches([], [], [], [])
    offset = 0
    for principal, raw_events in batches:
        try:
            _check_batch(principal, raw_events)
        except CreditLedgerError as exc:
            read.outcomes.append(exc)
            read.spans.append(None)
            continue
        assert isinstance(raw_events, list)
        for index, raw in enumerate(raw_events, start=offset):
            try:
                read.events.append((index, parse_event(raw, now)))
            except EventError as exc:
                raw_id = raw.get("id") if isinstance(raw, dict) else None
                read.invalid.append(
                    Rejection(
                        index, raw_id if isinstance(raw_id, str) else None, exc.code, exc.message
                    )
                )
        read.outcomes.append(IngestResult())
        read.spans.append((offset, len(raw_events)))
        offset += len(raw_events)
    return read


def charge_batches(ctx: Context, read: ReadBatches) -> list[IngestResult | CreditLedgerError]:
    """Charge what :func:`read_batches` read, in one transaction."""
    events = read.events

    def charge() -> IngestResult:
        result = IngestResult(rejected=list(read.invalid))
        if events:
            with ctx.uow() as uow:
                _charge_batch(uow, ctx, events, result)
                uow.commit()
        return result

    result = with_retry(charge)
    _end_holds(ctx, result)
    if len(read.spans) == 1 and read.spans[0] is not None:
        result.rejected.sort(key=lambda r: r.index)
        return [result]
    return [
        outcome if span is None else _part(result, events, *span)
        for outcome, span in zip(read.outcomes, read.spans, strict=True)
    ]


def _check_batch(principal: Principal, raw_events: object) -> None:
    require_service(principal)
    if not isinstance(raw_events, list):
        raise InvalidRequest("`events` must be a list.", param="events")
    if len(raw_events) > MAX_EVENTS_PER_BATCH:
        raise InvalidRequest(
            f"A batch holds at most {MAX_EVENTS_PER_BATCH} events; split it.", param="events"
        )


def _part(
    result: IngestResult, events: list[tuple[int, UsageEvent]], start: int, length: int
) -> IngestResult:
    """What a group's result says of one of its batches (indices ``start`` on)."""
    end = start + length
    rejected = sorted(
        (replace(r, index=r.index - start) for r in result.rejected if start <= r.index < end),
        key=lambda r: r.index,
    )
    duplicates = [i for i in result.duplicate_indices if start <= i < end]
    refused = {r.index + start for r in rejected} | set(duplicates)
    part = IngestResult(
        accepted=length - len(rejected) - len(duplicates),
        duplicates=len(duplicates),
        rejected=rejected,
        duplicate_indices=[i - start for i in duplicates],
    )
    for index, event in events:
        if start <= index < end and index not in refused:
            part.charged_teams.add(event.team_id)
            part.charged_requests.setdefault(event.team_id, []).append(event.id)
    part.recharging = result.recharging & part.charged_teams
    return part


def _end_holds(ctx: Context, result: IngestResult) -> None:
    """The holds of the requests just charged end, after the commit, so no decision in
    between sees neither the hold nor the charge. If the hold book does not answer,
    they end by expiry instead: holds are never money."""
    now = ctx.clock.now()
    for team_id, request_ids in result.charged_requests.items():
        try:
            ctx.holds.release_requests(team_id, request_ids, now)
        except ServiceUnavailable:
            log.warning(
                "holds of %d charged requests not ended: the hold book is down", len(request_ids)
            )


def _charge_batch(
    uow: UnitOfWork, ctx: Context, events: list[tuple[int, UsageEvent]], result: IngestResult
) -> None:
    """Charge each team's new events in time order against the grants open to usage,
    re-allocating the events a late one comes before; write it all set-based."""
    now = ctx.clock.now()
    reads = uow.read_for_usage([(e.team_id, e.id) for _, e in events])
    locks, grants = reads.locks, reads.grants
    known = _drop_unknown_teams(events, locks.teams, result)
    fresh = _drop_duplicates(reads.fingerprints, known, result)
    if not fresh or locks.price_version is None:
        return
    books = ctx.price_books.at_version(uow, locks.price_version)
    priced = _price(fresh, books, reads.pricing, result)
    window = timedelta(seconds=ctx.settings.late_arrival_window_seconds)
    cutoff = late_arrival_cutoff(now, window)
    writes = _Writes(uow, now)
    for team_id, new in _by_team(priced):
        open_grants = [g for g in grants[team_id] if open_to_late_usage(g, cutoff)]
        charged_after = _charged_after_late_event(uow, new, now, cutoff, open_grants)
        writes.add(charge_in_time_order(open_grants, charged_after, new, presorted=True))
        result.charged_teams.add(team_id)
        result.charged_requests[team_id] = [c.event.id for c in new]
    writes.flush(locks.credit)
    result.accepted += writes.accepted
    charged = {team_id: grants[team_id] for team_id in result.charged_requests}
    result.recharging = locks.recharging & result.charged_teams
    notices.low_balance_after(uow, ctx, charged, now, watched=locks.watched)


def _by_team(priced: list[tuple[int, UsageEvent, int]]) -> list[tuple[str, list[NewCharge]]]:
    by_team: dict[str, list[NewCharge]] = {}
    for _, event, charge in priced:
        by_team.setdefault(event.team_id, []).append(NewCharge(event, charge))
    return sorted(by_team.items())


def _charged_after_late_event(
    uow: UnitOfWork,
    new: list[NewCharge],
    now: datetime,
    cutoff: datetime,
    grants: list[Grant],
) -> list[UsageRecord]:
    """The already charged events that the first new event inside the late-arrival
    window comes before: they are allocated again with it, so arrival order inside the
    window never changes what each grant pays.

    When every grant is eligible alike for all usage from that event on (no scope, no
    start or end in between), each grant pays the same whatever the order, and nothing
    is read: the usual case costs no query."""
    late = first_late_event(new, cutoff)
    if late is None or not order_can_matter(grants, late.timestamp, now + MAX_AHEAD):
        return []
    latest = uow.usage.latest(late.team_id)
    if latest is None or (late.timestamp, late.id) > latest:
        return []
    if not order_can_matter(grants, late.timestamp, latest[0]):
        return []
    return after_late_event(late, uow.usage.charged_since(late.team_id, late.timestamp))


class _Writes:
    """The rows and ledger transactions of a batch, gathered to be written set-based."""

    def __init__(self, uow: UnitOfWork, now: datetime) -> None:
        self.uow = uow
        self.now = now
        self.records: list[UsageRecord] = []
        self.reallocated: list[UsageRecord] = []
        self.txs: list[tuple[str, ledger.Transaction]] = []

    @property
    def accepted(self) -> int:
        return len(self.records)

    def add(self, charges: TimeOrderedCharges) -> None:
        for step in charges.steps:
            if isinstance(step, Reallocated):
                self.reallocated.append(step.record)
                if step.adjustment is not None:
                    self.txs.append((self.uow.new_id("txn"), step.adjustment))
            else:
                self.records.append(self._record(step))

    def _record(self, charged: Charged) -> UsageRecord:
        event, allocation = charged.event, charged.allocation
        unit, quantity = single_meter(event.quantities)
        tx_id = None
        if charged.charge > 0:
            tx_id = self.uow.new_id("txn")
            tx = ledger.charge_usage(
                event.team_id,
                allocation.draws,
                allocation.uncovered,
                event.timestamp,
                f"Usage {event.product} {event.model}" + (f" on {event.gpu}" if event.gpu else ""),
                event.id,
            )
            self.txs.append((tx_id, tx))
        return UsageRecord(
            team_id=event.team_id,
            event_id=event.id,
            fingerprint=event.fingerprint,
            product=event.product,
            model=event.model,
            gpu=event.gpu,
            occurred_at=event.timestamp,
            charge=charged.charge,
            uncovered=allocation.uncovered,
            transaction_id=tx_id,
            received_at=self.now,
            draws=allocation.draws,
            unit=unit,
            quantity=quantity,
        )

    def flush(self, credit: dict[str, Nanos]) -> None:
        """Write it all; ``credit``: the teams' balances as locked. The new rows and
        the ledger travel together (the re-allocations of a late event, rare, first)."""
        self.uow.usage.reallocate(self.reallocated)
        with self.uow.together(max(len(self.records), len(self.txs))):
            self.uow.usage.add(self.records)
            self.uow.ledger.post_many(self.txs, self.now, credit)


def _drop_unknown_teams(
    events: list[tuple[int, UsageEvent]], teams: frozenset[str], result: IngestResult
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
    stored: dict[tuple[str, str], str], events: list[tuple[int, UsageEvent]], result: IngestResult
) -> list[tuple[int, UsageEvent]]:
    """Same (team, id) and payload as ``stored`` or before in the batch: a duplicate.
    Another payload: a conflict."""
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
            result.duplicate_indices.append(index)
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
