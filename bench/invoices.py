"""The invoices job at scale: ``run_invoices`` opening 10,000 teams' November invoices.

    .venv/bin/python bench/invoices.py                    # SQLite and PostgreSQL, 10,000 teams
    .venv/bin/python bench/invoices.py --backend sqlite   # one backend (sqlite|postgres|both)
    .venv/bin/python bench/invoices.py --teams 2000       # scaled down
    .venv/bin/python bench/invoices.py --quick            # smoke run: 500 teams
    .venv/bin/python bench/invoices.py --profile          # job and invariants under cProfile
    make bench-invoices                                   # BENCH_ARGS=... passes options

In process, on a fresh migrated database per backend (``_common.scratch_database``). Seeding,
not measured: the price book of ``_common`` and the teams (``uow.teams.add`` in one unit of
work) with the clock at 2026-10-31, every tenth team with a $0.25 promotional grant; then each
team's November usage through ``ingest_usage`` in batches of 5,000 with the clock at
2026-11-28T12:00Z: two or three events on one or two models (so one or two lines per invoice),
about $1–$5 that credits did not cover, every 25th team under the $0.50 minimum charge (its
invoice closes at $0.00 and carries the amount). On PostgreSQL the tables are then analysed,
as autovacuum would have done by the end of the month.

Figure: one timed ``run_invoices(ctx)`` with the clock at 2026-12-01T01:30Z, after
November's late-arrival window: invoices opened, seconds, invoices/s, and the ratio to the
goal (10,000 invoices in ≤ 60 s on each backend, i.e. ≥ 166.7 invoices/s;
scaled to ``--teams``). The job opens each invoice once, so each backend gives one run per
seeding. Checks afterwards (not timed into the figure): one invoice per team, numbered
CL-000001 … CL-<n> with no gap, no unbilled November usage left, and the ledger invariants
(``ctx.invariants.violations()``, timed on their own). Everything lands in
``bench/results/invoices-<stamp>.json``; with ``--profile`` the job and the invariants run
under cProfile and their top 25 functions by cumulative time go there too (the profiled
figure includes the profiler's overhead).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import sysconfig
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import _common as c
from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables as t
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.invoices import invoice_number
from creditledger.domain.money import dollars
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.invoices import run_invoices
from creditledger.services.prices import PriceInput, set_price_book
from creditledger.services.usage import ingest_usage

GOAL_TEAMS = 10_000
GOAL_SECONDS = 60.0
GOAL_RATE = GOAL_TEAMS / GOAL_SECONDS  # invoices/s

SETUP_AT = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)  # teams, price book, grants
INGEST_AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # November's usage reported
RUN_AT = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)  # after November's late-arrival window
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)
BATCH = 5_000
PROMO_EVERY = 10  # every tenth team has a small promotional grant
SMALL_EVERY = 25  # every 25th team stays under the minimum charge
PROFILE_TOP = 25
SRC = Path(__file__).resolve().parent.parent / "src"


def seed_teams(ctx: Context, count: int) -> list[str]:
    """The price book and ``count`` teams, with the clock at ``SETUP_AT``."""
    at_setup = replace(ctx, clock=FixedClock(SETUP_AT))
    set_price_book(
        at_setup,
        Principal(TokenKind.OPERATOR, "bench"),
        [
            PriceInput("serverless", m, None, meter, price, 1_000_000)
            for m in c.MODELS
            for meter, price in (("input_tokens", "0.20"), ("output_tokens", "0.60"))
        ],
    )
    ids: list[str] = []
    with at_setup.uow() as uow:
        for n in range(count):
            team_id = uow.new_id("team")
            uow.teams.add(team_id, f"bench team {n}", SETUP_AT)
            if n % PROMO_EVERY == 1:  # never one of the small teams
                promo = NewGrant(
                    GrantKind.PROMOTIONAL, GrantSource.MANUAL, dollars("0.25"), note="bench"
                )
                issue_grant(uow, at_setup, team_id, promo, "bench credit")
            ids.append(team_id)
        uow.commit()
    return ids


def november_events(team_ids: list[str]) -> list[dict[str, Any]]:
    """Two or three events per team on one or two models, spread over November 1–27."""
    out: list[dict[str, Any]] = []
    for n, team_id in enumerate(team_ids):
        first = c.MODELS[n % len(c.MODELS)]
        second = c.MODELS[(n + 1) % len(c.MODELS)]
        models = [first, first] if n % 2 == 0 else [first, second, second]
        scale = 10_000 if n % SMALL_EVERY == 0 else 1_000_000  # a few cents, or dollars
        for k, model in enumerate(models):
            at = NOVEMBER + timedelta(days=(n + 9 * k) % 27, seconds=(n * 37 + k * 911) % 86_400)
            out.append(
                {
                    "id": f"inv-bench-{n:06d}-{k}",
                    "team_id": team_id,
                    "product": "serverless",
                    "model": model,
                    "timestamp": at.isoformat(),
                    "quantities": {
                        "input_tokens": scale * (1 + (n + k) % 4),
                        "output_tokens": scale * (1 + (n * 7 + k) % 3) // 2,
                    },
                }
            )
    return out


def seed_usage(ctx: Context, team_ids: list[str]) -> int:
    at_ingest = replace(ctx, clock=FixedClock(INGEST_AT))
    service = Principal(TokenKind.SERVICE, "bench")
    events = november_events(team_ids)
    for start in range(0, len(events), BATCH):
        batch = events[start : start + BATCH]
        result = ingest_usage(at_ingest, service, batch)
        if result.rejected or result.accepted != len(batch):
            raise RuntimeError(
                f"usage batch at {start}: {result.accepted} accepted, rejected "
                f"{result.rejected[:3]}"
            )
    return len(events)


def analyse(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


def check(url: str, teams: int) -> list[str]:
    """One invoice per team, numbers CL-000001 … with no gap, November all billed."""
    problems = []
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    i, e = t.invoices, t.usage_events
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(i.c.number, i.c.team_id, i.c.period_start).order_by(i.c.sequence)
        ).all()
        left = conn.execute(
            sa.select(sa.func.count()).where(
                e.c.invoice_id.is_(None), e.c.uncovered_nanos > 0, e.c.occurred_at < DECEMBER
            )
        ).scalar_one()
        statuses: dict[str, int] = {
            str(status): int(count)
            for status, count in conn.execute(
                sa.select(i.c.status, sa.func.count()).group_by(i.c.status)
            )
        }
    engine.dispose()
    numbers = [r.number for r in rows]
    expected = [invoice_number(n) for n in range(1, teams + 1)]
    if len(rows) != teams:
        problems.append(f"{len(rows):,} invoices, expected {teams:,}")
    if numbers != expected:
        wrong = next(
            (
                f"#{i + 1}: {a} vs {b}"
                for i, (a, b) in enumerate(zip(numbers, expected, strict=False))
                if a != b
            ),
            "",
        )
        problems.append(f"numbers are not {expected[0]}..{expected[-1]} {wrong}".rstrip())
    if len({r.team_id for r in rows}) != len(rows):
        problems.append("a team has more than one invoice")
    if any(r.period_start != NOVEMBER for r in rows):
        problems.append("an invoice is not for November 2026")
    if left:
        problems.append(f"{left} November usage event(s) left unbilled")
    print(f"  invoice statuses: {statuses}", flush=True)
    return problems


def top_of_profile(profile: cProfile.Profile) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
    text = out.getvalue()
    for prefix in (sysconfig.get_paths()["purelib"], str(SRC)):
        text = text.replace(prefix + os.sep, "")
    return text


def bench_backend(backend: str, teams: int, profile: bool) -> dict[str, Any]:
    figure: dict[str, Any] = {"teams": teams}
    with c.scratch_database(backend) as url:
        ctx = c.context(url)
        began = time.monotonic()
        ids = seed_teams(ctx, teams)
        took_teams = time.monotonic() - began
        events = seed_usage(ctx, ids)
        if backend == "postgres":
            analyse(url)
        figure["seed"] = {
            "events": events,
            "teams_seconds": took_teams,
            "seconds": time.monotonic() - began,
        }
        print(
            f"  seeded {teams:,} teams in {took_teams:.1f} s and {events:,} usage events, "
            f"{figure['seed']['seconds']:.0f} s in all (not measured)",
            flush=True,
        )
        at_run = replace(ctx, clock=FixedClock(RUN_AT))
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        opened = run_invoices(at_run)
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - started
        goal_seconds = GOAL_SECONDS * teams / GOAL_TEAMS
        rate = opened / seconds if seconds else 0.0
        figure.update(
            opened=opened,
            seconds=seconds,
            invoices_per_s=rate,
            goal_seconds=goal_seconds,
            ratio_to_goal=seconds / goal_seconds,
            verdict=c.verdict(seconds, goal_seconds, higher_is_better=False),
            profiled=profile,
            load_after=c.machine_load()[0],
        )
        print(
            f"  run_invoices: {opened:,} invoices opened in {seconds:.1f} s "
            f"({rate:,.1f} invoices/s){' under cProfile' if profile else ''}",
            flush=True,
        )
        print(
            f"    {seconds / goal_seconds:.2f} × goal (≤ {goal_seconds:,.1f} s for {teams:,}, "
            f"≥ {GOAL_RATE:.1f} invoices/s; {GOAL_RATE / rate if rate else 0:.2f} × the rate "
            f"needed): {figure['verdict']}",
            flush=True,
        )
        if profiler is not None:
            figure["profile_top"] = top_of_profile(profiler)
            print(figure["profile_top"], flush=True)
        problems = check(url, teams)
        figure["check_problems"] = problems
        print(f"  invoices check: {problems or 'clean'}", flush=True)
        checker = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if checker is not None:
            checker.enable()
        violations = list(ctx.invariants.violations())
        if checker is not None:
            checker.disable()
        figure["invariants"] = {
            "seconds": time.perf_counter() - started,
            "violations": violations,
        }
        print(
            f"  invariants: {violations or 'clean'} "
            f"({figure['invariants']['seconds']:.1f} s, not part of the figure)",
            flush=True,
        )
        if checker is not None:
            figure["invariants"]["profile_top"] = top_of_profile(checker)
            print(figure["invariants"]["profile_top"], flush=True)
        ctx.uow.dispose()
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--teams", type=int, default=None, help=f"default {GOAL_TEAMS:,}")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 teams")
    parser.add_argument(
        "--profile", action="store_true", help="the job and the invariants under cProfile"
    )
    args = parser.parse_args()
    teams: int = args.teams or (500 if args.quick else GOAL_TEAMS)
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    logging.basicConfig(level=logging.WARNING, format="  %(levelname)s %(name)s: %(message)s")
    print(
        f"invoices: run_invoices over {teams:,} teams on {', '.join(backends)}; one run per "
        f"backend; load average {c.machine_load()[0]:.1f}",
        flush=True,
    )
    figures: dict[str, Any] = {
        "goal": {"teams": GOAL_TEAMS, "seconds": GOAL_SECONDS},
        "clock": {"seed": INGEST_AT.isoformat(), "run": RUN_AT.isoformat()},
        "load_before": c.machine_load()[0],
    }
    for backend in backends:
        print(f"== {backend}", flush=True)
        figures[backend] = bench_backend(backend, teams, args.profile)
    print("summary")
    failed = False
    for backend in backends:
        f = figures[backend]
        bad = bool(f["check_problems"] or f["invariants"]["violations"])
        failed = failed or bad
        print(
            f"  {backend:<8} {f['opened']:>6,} invoices in {f['seconds']:6.1f} s, "
            f"{f['invoices_per_s']:7.1f} invoices/s, {f['ratio_to_goal']:.2f} × goal "
            f"(≤ {c.fmt(f['goal_seconds'], 's')}): {f['verdict']}; checks "
            f"{'FAILED' if bad else 'clean'}"
        )
    path = c.record("invoices", figures)
    print(f"recorded {path}")
    if failed:
        raise SystemExit("a check failed: see above")


if __name__ == "__main__":
    main()
