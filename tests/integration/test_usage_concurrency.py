"""Arrival order and concurrency (docs/quality.md).

The same events give the same per-grant result whatever order and batches they arrive
in (inside the late-arrival window), and batches charged at the same moment give what
they give one after the other: each batch locks its teams (in id order) before it reads
their grants and dedupes its events."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.services.context import Context
from creditledger.services.usage import IngestResult, ingest_usage
from tests.helpers import Platform, at, at_once, event, nanos, price, usage_violations

GATEWAY = Principal(TokenKind.SERVICE, "tok_gateway")
NOON = at("2026-11-24T12:00")
MIDNIGHT = at("2026-11-25T00:00")
ARRIVAL = MIDNIGHT + timedelta(minutes=55)


def _ingest(ctx: Context, events: Sequence[dict[str, Any]]) -> IngestResult:
    return ingest_usage(ctx, GATEWAY, list(events))


def _window_team(platform: Platform, clock: FixedClock) -> tuple[str, list[str]]:
    """A team whose credits change around midnight: llama-only credit expiring then,
    unlimited credit expiring a day later, and prepaid credit, all granted at noon.
    Returns the grants in consumption order; the clock is left at their arrival."""
    clock.at = NOON
    tid = platform.team().team_id
    grants = [
        platform.promo(tid, "0.20", scope={"models": ["llama"]}, expires_at=MIDNIGHT),
        platform.promo(tid, "0.50", expires_at=MIDNIGHT + timedelta(days=1)),
        platform.prepaid(tid, "0.30"),
    ]
    clock.at = ARRIVAL
    return tid, grants


def _window_events(tid: str, rng: random.Random) -> list[dict[str, Any]]:
    """Forty events from 23:00 to 00:50, both sides of the midnight expiry."""
    start = MIDNIGHT - timedelta(hours=1)
    return [
        event(
            tid,
            f"e{i:02d}",
            start + timedelta(minutes=rng.randrange(110), seconds=rng.randrange(60)),
            model=rng.choice(["llama", "mistral"]),
            requests=rng.randrange(1, 8),
        )
        for i in range(40)
    ]


def _batches(events: list[dict[str, Any]], rng: random.Random) -> list[list[dict[str, Any]]]:
    shuffled = events[:]
    rng.shuffle(shuffled)
    cuts = sorted(rng.sample(range(1, len(shuffled)), rng.randrange(1, 8)))
    return [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]


def _result(platform: Platform, tid: str, grants: list[str]) -> tuple[list[int], int]:
    remaining = platform.remaining(tid)
    return [remaining[g] for g in grants], platform.unpaid(tid)


@pytest.fixture
def platform(client: TestClient, ctx: Context) -> Platform:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"), price("mistral", "requests", "0.01"))
    return platform


def test_arrival_order_and_batching_inside_the_window_never_change_the_result(
    platform: Platform, ctx: Context, clock: FixedClock
) -> None:
    outcomes = set()
    for seed in range(6):
        tid, grants = _window_team(platform, clock)
        rng = random.Random(seed)
        # Event ids are per team: every team gets the same events, in its own order.
        events = _window_events(tid, random.Random(42))
        for batch in _batches(events, rng):
            _ingest(ctx, batch)
        remaining, unpaid = _result(platform, tid, grants)
        outcomes.add((tuple(remaining), unpaid))

    assert len(outcomes) == 1
    [(remaining_after, unpaid)] = outcomes
    assert remaining_after[0] == 0 and unpaid > 0  # every grant was in play
    assert usage_violations(ctx.settings.database_url) == []


def test_a_late_event_inside_the_window_reallocates_the_events_after_it(
    platform: Platform, ctx: Context, clock: FixedClock
) -> None:
    """Promotional credit runs out at 12:30 and prepaid credit bought at 13:00 pays for
    what follows. Charged in time order, 12:30 usage goes partly unpaid and 13:05 usage
    draws the prepaid credit. When the 12:30 event arrives last (50 minutes late, inside
    the window), the 13:05 event has already taken the promotional credit: it is
    allocated again, and every grant ends as in time order."""
    noon = NOON
    results = []
    for late_first in (False, True):
        clock.at = noon
        tid = platform.team().team_id
        promo = platform.promo(tid, "0.10", expires_at=noon + timedelta(days=1))
        clock.at = noon + timedelta(hours=1)
        prepaid = platform.prepaid(tid, "0.10")
        clock.at = noon + timedelta(hours=1, minutes=20)
        early = event(tid, "early", noon + timedelta(minutes=30), requests=15)
        late = event(tid, "late", noon + timedelta(hours=1, minutes=5), requests=10)
        for batch in ([late], [early]) if late_first else ([early], [late]):
            _ingest(ctx, batch)
        results.append((platform.remaining(tid)[promo], platform.remaining(tid)[prepaid]))

    assert results[0] == results[1]


def test_concurrent_batches_for_one_team_equal_the_same_batches_one_by_one(
    platform: Platform, ctx: Context, clock: FixedClock
) -> None:
    """Seen to fail without its lock: with `SqlTeams.lock_many` made a plain SELECT
    (its `FOR UPDATE` removed) on PostgreSQL, concurrent batches read the same
    `remaining` and drew it twice: CheckViolation `ck_grants_remaining_nonnegative`
    in the threads, and `balance_after` chains (I3) broken in what did commit.
    (SQLite serialises writers with BEGIN IMMEDIATE whatever the lock does.)"""
    for seed in range(3):
        rng = random.Random(seed)
        one_by_one, grants_1 = _window_team(platform, clock)
        together, grants_2 = _window_team(platform, clock)
        sequential = _batches(_window_events(one_by_one, random.Random(seed)), rng)
        concurrent = [[e | {"team_id": together} for e in batch] for batch in sequential]

        for batch in sequential:
            _ingest(ctx, batch)
        results = at_once([partial(_ingest, ctx, b) for b in concurrent])

        assert sum(r.accepted for r in results) == 40
        assert _result(platform, together, grants_2) == _result(platform, one_by_one, grants_1)
    assert usage_violations(ctx.settings.database_url) == []


def test_the_same_events_sent_in_concurrent_batches_are_charged_once(
    platform: Platform, ctx: Context, clock: FixedClock
) -> None:
    """Seen to fail without its lock: on PostgreSQL with `SqlTeams.lock_many`'s
    `FOR UPDATE` removed, several batches found no stored copy of the events and the
    later inserts broke `pk_usage_events` (UniqueViolation in the threads)."""
    tid, _ = _window_team(platform, clock)
    events = _window_events(tid, random.Random(7))

    results = at_once([lambda: _ingest(ctx, events) for _ in range(4)])

    assert sorted((r.accepted, r.duplicates) for r in results) == [(0, 40)] * 3 + [(40, 0)]
    assert usage_violations(ctx.settings.database_url) == []


def test_32_simultaneous_10_cent_charges_on_1_dollar_draw_1_dollar_and_leave_the_rest_unpaid(
    platform: Platform, ctx: Context, clock: FixedClock
) -> None:
    """docs/quality.md: never negative, never more than the balance drawn. Seen to fail
    without its lock: on PostgreSQL with `SqlTeams.lock_many`'s `FOR UPDATE` removed,
    concurrent charges drew from the same `remaining`; commits broke
    `ck_grants_remaining_nonnegative` and the ledger invariants (I3) failed after."""
    for round_ in range(3):
        clock.at = NOON
        tid = platform.team().team_id
        grant = platform.prepaid(tid, "1.00")
        clock.at = NOON + timedelta(hours=1)
        when = NOON + timedelta(minutes=30)

        charges = [[event(tid, f"r{round_}-{i}", when, requests=10)] for i in range(32)]

        results = at_once([partial(_ingest, ctx, c) for c in charges])

        assert sum(r.accepted for r in results) == 32
        assert platform.remaining(tid) == {grant: 0}
        assert platform.unpaid(tid) == nanos("2.20")
    assert usage_violations(ctx.settings.database_url) == []


def test_concurrent_batches_spanning_several_teams_in_any_order_neither_deadlock_nor_overdraw(
    platform: Platform, ctx: Context, clock: FixedClock
) -> None:
    """Each batch locks its teams in id order whatever order its events name them in.
    Seen to fail without its lock: on PostgreSQL with `SqlTeams.lock_many`'s
    `FOR UPDATE` removed, threads broke `ck_grants_remaining_nonnegative`."""
    clock.at = NOON
    teams = [platform.team().team_id for _ in range(4)]
    grants = {tid: platform.prepaid(tid, "0.50") for tid in teams}
    clock.at = NOON + timedelta(hours=1)
    when = NOON + timedelta(minutes=30)
    rng = random.Random(3)
    batches = []
    for b in range(8):
        order = teams[:] if b % 2 else teams[::-1]
        rng.shuffle(order)
        batches.append([event(tid, f"b{b}-{tid}", when, requests=10) for tid in order])

    results = at_once([partial(_ingest, ctx, batch) for batch in batches])

    assert sum(r.accepted for r in results) == 32
    for tid in teams:
        assert platform.remaining(tid) == {grants[tid]: 0}
        assert platform.unpaid(tid) == nanos("0.30")
    assert usage_violations(ctx.settings.database_url) == []


def test_a_late_event_reallocates_even_when_its_batch_brings_an_event_older_than_the_window(
    platform: Platform, ctx: Context, clock: FixedClock
) -> None:
    """As above, but the late 12:30 event comes with a 12:00 event, older than the
    window (which reaches back to 12:20): what was charged after 12:30 is still
    allocated again, so every grant ends as in time order."""
    noon = NOON
    results = []
    for late_first in (False, True):
        clock.at = noon
        tid = platform.team().team_id
        promo = platform.promo(tid, "0.10", expires_at=noon + timedelta(days=1))
        clock.at = noon + timedelta(hours=1)
        prepaid = platform.prepaid(tid, "0.10")
        clock.at = noon + timedelta(hours=1, minutes=20)
        old = event(tid, "old", noon, requests=1)
        early = event(tid, "early", noon + timedelta(minutes=30), requests=15)
        late = event(tid, "late", noon + timedelta(hours=1, minutes=5), requests=10)
        for batch in ([late], [old, early]) if late_first else ([old, early], [late]):
            _ingest(ctx, batch)
        results.append((platform.remaining(tid)[promo], platform.remaining(tid)[prepaid]))

    assert results[0] == results[1] == (0, 0)
    assert usage_violations(ctx.settings.database_url) == []
