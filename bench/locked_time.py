"""Where a usage batch's time goes, and how much of it holds its teams' locks.

    .venv/bin/python bench/locked_time.py                     # PostgreSQL, 1,000 teams
    .venv/bin/python bench/locked_time.py --backend sqlite --teams 1

One process charges batches of 1,000 events (``_common.events``) over ``--teams`` teams
through ``ingest_usage``, as ``ingest.py`` does in process, and times each step of a
batch: its wall time and the CPU time of the charging thread. A batch locks its teams
with its first read (``read_for_usage``) and holds them until its commit, so when two
servers send batches over the same teams, this locked window is what each waits for:
1,000 events divided by it is the most they can charge together. The Python CPU
inside the window is what an implementation of the same rows could move out of it
(the storage floor of ``_floor.py`` precomputes its rows); the rest is the database's.

The steps are timed by wrapping the functions that take them, by name: a diagnostic
that follows the code of ``services/usage.py``, not a figure with a goal.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import _common as c
from creditledger.adapters.db import repositories, uow, usage
from creditledger.services import usage as charging
from creditledger.services.usage import ingest_usage

BATCH = 1_000
STEPS: list[tuple[object, str, str]] = [
    (charging, "read_batches", "parse and check the events (no lock yet)"),
    (uow.SqlUnitOfWork, "read_for_usage", "lock the teams and read (one round trip)"),
    (charging, "_price", "price"),
    (charging, "_by_team", "group by team"),
    (charging._Writes, "flush", "write"),
    (usage.SqlUsage, "add", "write the usage rows"),
    (repositories.SqlLedger, "post_many", "write the ledger, teams and grants"),
    (uow.SqlUnitOfWork, "commit", "commit"),
]
"""(owner, attribute, label) of each timed call, in the order a batch makes them: each
is made once a batch, so that reading the clocks costs next to nothing."""

LOOP = "allocate, build the records and transactions"
"""What each team's loop takes: from the end of ``_by_team`` to the start of ``flush``
(the late-arrival check, the allocation in time order, the records and the ledger
transactions, team by team; timing each call would cost more than some of them)."""

SHOWN = [label for _, name, label in STEPS if name not in ("_by_team", "flush")]
SHOWN.insert(SHOWN.index("write the usage rows"), LOOP)


@dataclass
class Batch:
    """One batch's times: per step [wall, CPU] in seconds, and when each call began and
    ended (wall, CPU)."""

    steps: dict[str, list[float]] = field(default_factory=dict)
    began: dict[str, tuple[float, float]] = field(default_factory=dict)
    ended: dict[str, tuple[float, float]] = field(default_factory=dict)

    def between(self, end_of: str, start_of: str) -> tuple[float, float]:
        """Wall and CPU from the end of one call to the start of another."""
        (wall, cpu), (later_wall, later_cpu) = self.ended[end_of], self.began[start_of]
        return later_wall - wall, later_cpu - cpu

    @property
    def locked(self) -> tuple[float, float]:
        """From the start of the read that locks the teams to the end of the commit."""
        (wall, cpu), (end_wall, end_cpu) = self.began["read_for_usage"], self.ended["commit"]
        return end_wall - wall, end_cpu - cpu

    def spent(self, label: str) -> tuple[float, float]:
        if label == LOOP:
            return self.between("_by_team", "flush")
        wall, cpu = self.steps.get(label, [0.0, 0.0])
        return wall, cpu


class Timer:
    """Wraps each step's function; ``batch`` collects the times of the batch running."""

    def __init__(self) -> None:
        self.batch = Batch()
        self.undo: list[tuple[object, str, Any]] = []
        for owner, name, label in STEPS:
            self.wrap(owner, name, label)

    def wrap(self, owner: object, name: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            self.batch.began.setdefault(name, (wall, cpu))
            try:
                return original(*args, **kwargs)
            finally:
                now_wall, now_cpu = time.perf_counter(), time.thread_time()
                self.batch.ended[name] = (now_wall, now_cpu)
                spent = self.batch.steps.setdefault(label, [0.0, 0.0])
                spent[0] += now_wall - wall
                spent[1] += now_cpu - cpu

        self.undo.append((owner, name, original))
        setattr(owner, name, timed)

    @contextmanager
    def batch_timed(self) -> Iterator[Batch]:
        self.batch = Batch()
        yield self.batch

    def restore(self) -> None:
        for owner, name, original in reversed(self.undo):
            setattr(owner, name, original)


def ms(seconds: float) -> str:
    return f"{1000 * seconds:7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="postgres", choices=("postgres", "sqlite"))
    parser.add_argument("--teams", type=int, default=1_000, help="teams per batch")
    parser.add_argument("--batches", type=int, default=40, help="batches timed")
    args = parser.parse_args()
    warmup = 5
    timer = Timer()
    batches: list[Batch] = []
    totals: list[tuple[float, float, float]] = []
    try:
        with c.scratch_database(args.backend) as url:
            ctx = c.context(url)
            teams, _, _ = c.seed(ctx, max(args.teams, 2))
            at = ctx.clock.now()
            principal = c.service_principal()
            events = [
                c.events(teams[: args.teams], BATCH, f"lt-{n:04d}", at)
                for n in range(warmup + args.batches)
            ]
            gc.collect()
            gc.freeze()
            database = c.postgres_pids() if args.backend == "postgres" else []
            for n, batch in enumerate(events):
                db_before = c.cpu_seconds(database)
                wall, cpu = time.perf_counter(), time.process_time()
                with timer.batch_timed() as timed:
                    ingest_usage(ctx, principal, batch)
                if n >= warmup:
                    batches.append(timed)
                    totals.append(
                        (
                            time.perf_counter() - wall,
                            time.process_time() - cpu,
                            c.cpu_seconds(database) - db_before,
                        )
                    )
            ctx.uow.dispose()
    finally:
        timer.restore()

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    print(
        f"{args.backend}, batches of {BATCH:,} events over {args.teams:,} team(s): medians of "
        f"{len(batches)} batches, milliseconds per batch"
    )
    print(f"  {'step':<44} {'wall':>7} {'CPU':>7}")
    steps: dict[str, dict[str, float]] = {}
    for label in SHOWN:
        wall = median([b.spent(label)[0] for b in batches])
        cpu = median([b.spent(label)[1] for b in batches])
        steps[label] = {"wall_ms": 1000 * wall, "cpu_ms": 1000 * cpu}
        print(f"  {label:<44} {ms(wall)} {ms(cpu)}")
    locked_wall = median([b.locked[0] for b in batches])
    locked_cpu = median([b.locked[1] for b in batches])
    batch_wall = median([t[0] for t in totals])
    batch_cpu = median([t[1] for t in totals])
    db_cpu = median([t[2] for t in totals])
    print(f"  {'whole batch (process CPU)':<44} {ms(batch_wall)} {ms(batch_cpu)}")
    print(
        f"  teams locked, read to commit: {ms(locked_wall).strip()} ms "
        f"({100 * locked_wall / batch_wall:.0f} % of the batch)"
    )
    if database:
        print(
            f"    of which Python {ms(locked_cpu).strip()} ms and waiting on PostgreSQL "
            f"{ms(locked_wall - locked_cpu).strip()} ms; PostgreSQL's CPU "
            f"{ms(db_cpu).strip()} ms a batch"
        )
    else:
        print("    all of it this process's CPU: SQLite runs inside it")
    print(
        f"  batches over the same teams, one after another: at most "
        f"{BATCH / locked_wall:,.0f} events/s"
    )
    path = c.record(
        "locked-time",
        {
            "backend": args.backend,
            "teams": args.teams,
            "batches": len(batches),
            "steps": steps,
            "locked_wall_ms": 1000 * locked_wall,
            "locked_python_cpu_ms": 1000 * locked_cpu,
            "batch_wall_ms": 1000 * batch_wall,
            "batch_process_cpu_ms": 1000 * batch_cpu,
            "postgres_cpu_ms": 1000 * db_cpu if database else None,
        },
    )
    print(f"recorded {path}")


if __name__ == "__main__":
    main()
