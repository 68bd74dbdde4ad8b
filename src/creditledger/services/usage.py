"""Usage ingestion: validate and price a batch in memory, then charge it in one
transaction with set-based writes (SPEC §4, §5; PERFORMANCE.md "How").

Events are charged against the grants valid at their own timestamp, in the order
of SPEC §4. Within a batch they are applied per team in (timestamp, id) order, so
the same batch gives the same result whatever order its events arrived in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from creditledger.domain import ledger
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.consumption import allocate
from creditledger.domain.errors import Forbidden, InvalidRequest
from creditledger.domain.grants import Grant
from creditledger.domain.pricing import (
    PriceBook,
    PricingError,
    TeamPricing,
    charge_for,
    effective,
    effective_team,
)
from creditledger.domain.usage import (
    MAX_EVENTS_PER_BATCH,
    EventError,
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
    books = uow.pricing.books()
    team_pricing = uow.pricing.for_teams(team_ids)
    priced = _price(fresh, books, team_pricing, result)
    closed_before = now - timedelta(seconds=ctx.settings.late_arrival_window_seconds)
    grants = {
        team_id: _open_to_usage(team_grants, closed_before)
        for team_id, team_grants in uow.grants.for_teams(team_ids).items()
    }
    remaining = {g.id: g.remaining for gs in grants.values() for g in gs}
    txs: list[tuple[str, ledger.Transaction]] = []
    rows: list[UsageRecord] = []
    priced.sort(key=lambda item: (item[1].team_id, item[1].timestamp, item[1].id))
    for _, event, charge in priced:
        tx_id, uncovered = _charge_event(uow, event, charge, grants[event.team_id], remaining, txs)
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
                uncovered,
                tx_id,
                now,
            )
        )
        result.charged_teams.add(event.team_id)
    uow.usage.add(rows)
    uow.ledger.post_many(txs, now)
    result.accepted += len(rows)


def _open_to_usage(grants: list[Grant], closed_before: datetime) -> list[Grant]:
    """Leave out grants whose late-arrival window has closed (expired at or before
    ``closed_before``): their rest is written off by the expiry job whenever it runs,
    so late usage arriving after the window never depends on when that was."""
    return [g for g in grants if g.expires_at is None or g.expires_at > closed_before]


def _charge_event(
    uow: UnitOfWork,
    event: UsageEvent,
    charge: int,
    grants: list[Grant],
    remaining: dict[str, int],
    txs: list[tuple[str, ledger.Transaction]],
) -> tuple[str | None, int]:
    """Allocate one event; queue its ledger transaction. Returns (tx id, uncovered)."""
    if charge == 0:
        return None, 0
    allocation = allocate(grants, charge, event.scope, event.timestamp, remaining, presorted=True)
    for grant_id, taken in allocation.draws:
        remaining[grant_id] -= taken
    tx_id = uow.new_id("txn")
    description = f"Usage {event.product} {event.model}" + (f" on {event.gpu}" if event.gpu else "")
    txs.append(
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
    return tx_id, allocation.uncovered


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
