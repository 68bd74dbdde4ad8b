"""Usage ingestion throughput: batches of 1,000 priced events charged across grants.

    .venv/bin/python bench/ingest.py            # full run, ~5 minutes
    .venv/bin/python bench/ingest.py --quick    # smoke run: one short run per figure

Matrix: {in-process, in-process with 2 worker processes, HTTP with 1 and 2 uvicorn
workers} × {PostgreSQL, SQLite} × {1 team, 1,000 teams}, plus single-event POSTs (8
connections, PostgreSQL) to spread teams and to one hot team. The raw ceilings of
bench/README.md are measured in the same run (C_batch, C_evt, C_hot with pgbench, C_lite
with plain sqlite3, C_asgi with a bare ASGI app) and every figure is printed with its ratio
to its ceiling and its goal. Each figure is the median of ``--runs`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

import _common as c
import _floor
from creditledger.services.context import Context
from creditledger.services.usage import ingest_usage

BATCH = 1_000
TEAMS = 1_000
HTTP_CONNECTIONS = 4
SINGLE_CONNECTIONS = 8

# The goals, as the tables of bench/README.md give them.
GOAL_HTTP_PG = 0.30  # × C_batch
GOAL_INPROC_2P_PG = 0.45  # × C_batch
GOAL_SQLITE = 0.60  # × C_lite
GOAL_SINGLE = 0.50  # × C_evt
GOAL_HOT = 0.50  # × spread-team throughput of the same path
GOAL_RSS_MB = 500


# --- the raw ceilings ----------------------------------------------------------------------

CEILING_SCHEMA = """
DROP TABLE IF EXISTS ceiling_ledger, ceiling_events, ceiling_teams;
CREATE TABLE ceiling_teams (id text PRIMARY KEY, credit_nanos bigint NOT NULL);
CREATE TABLE ceiling_events (
    team_id text NOT NULL, event_id text NOT NULL, charge_nanos bigint NOT NULL,
    PRIMARY KEY (team_id, event_id));
CREATE TABLE ceiling_ledger (
    seq bigserial PRIMARY KEY, team_id text NOT NULL, event_id text NOT NULL,
    amount_nanos bigint NOT NULL);
INSERT INTO ceiling_teams
    SELECT 'team' || lpad(CAST(g AS text), 6, '0'), 1000000000000000000
    FROM generate_series(0, 999) g;
"""

# Dedup 1,000 events, lock the batch's teams in sorted order, one balance update per team,
# 1,000 ledger rows, one commit.
C_BATCH_SCRIPT = """
BEGIN;
SELECT count(*) FROM (
    SELECT id FROM ceiling_teams WHERE id IN (
        SELECT 'team' || lpad(CAST(g % :teams AS text), 6, '0') FROM generate_series(0, 999) g)
    ORDER BY id FOR UPDATE) locked;
WITH fresh AS (
    INSERT INTO ceiling_events (team_id, event_id, charge_nanos)
    SELECT 'team' || lpad(CAST(g % :teams AS text), 6, '0'),
           :client_id || '-' || txid_current() || '-' || g,
           20000 + 600 * (g % 300)
    FROM generate_series(0, 999) g
    ON CONFLICT DO NOTHING
    RETURNING team_id, event_id, charge_nanos
), ledger AS (
    INSERT INTO ceiling_ledger (team_id, event_id, amount_nanos)
    SELECT team_id, event_id, -charge_nanos FROM fresh
)
UPDATE ceiling_teams t SET credit_nanos = t.credit_nanos - s.total
FROM (SELECT team_id, sum(charge_nanos) AS total FROM fresh GROUP BY team_id) s
WHERE t.id = s.team_id;
COMMIT;
"""

# One event per transaction: dedup insert, balance update (the team's row lock), ledger row.
C_EVENT_SCRIPT = """
\\set team random(0, :teams - 1)
\\set charge random(20000, 200000)
BEGIN;
INSERT INTO ceiling_events (team_id, event_id, charge_nanos)
    VALUES ('team' || lpad(CAST(:team AS text), 6, '0'), :client_id || '-' || txid_current(),
            :charge)
    ON CONFLICT DO NOTHING;
UPDATE ceiling_teams SET credit_nanos = credit_nanos - :charge
    WHERE id = 'team' || lpad(CAST(:team AS text), 6, '0');
INSERT INTO ceiling_ledger (team_id, event_id, amount_nanos)
    VALUES ('team' || lpad(CAST(:team AS text), 6, '0'), :client_id || '-' || txid_current(),
            -:charge);
COMMIT;
"""

LITE_SCHEMA = """
CREATE TABLE teams (id TEXT PRIMARY KEY, credit INTEGER NOT NULL);
CREATE TABLE grants (id TEXT PRIMARY KEY, team_id TEXT NOT NULL, position INTEGER NOT NULL,
                     remaining INTEGER NOT NULL);
CREATE INDEX grants_team ON grants (team_id);
CREATE TABLE usage (team_id TEXT NOT NULL, event_id TEXT NOT NULL, charge INTEGER NOT NULL,
                    PRIMARY KEY (team_id, event_id));
CREATE TABLE ledger (seq INTEGER PRIMARY KEY, team_id TEXT NOT NULL, grant_id TEXT,
                     amount INTEGER NOT NULL, balance_after INTEGER NOT NULL);
"""
LITE_PRICES = {
    (model, meter): (price, 1_000_000)
    for model in c.MODELS
    for meter, price in (("input_tokens", 200_000_000), ("output_tokens", 600_000_000))
}


def lite_charge(conn: sqlite3.Connection, batch: list[dict[str, Any]]) -> int:
    """C_lite: one batch charged with plain sqlite3 and the logic in plain Python."""
    conn.execute("BEGIN IMMEDIATE")
    team_ids = sorted({e["team_id"] for e in batch})
    marks = ",".join("?" * len(team_ids))
    credit = dict(conn.execute(f"SELECT id, credit FROM teams WHERE id IN ({marks})", team_ids))
    grants: dict[str, list[list[Any]]] = {t: [] for t in team_ids}
    for gid, team, remaining in conn.execute(
        f"SELECT id, team_id, remaining FROM grants WHERE team_id IN ({marks}) "
        "ORDER BY team_id, position",
        team_ids,
    ):
        grants[team].append([gid, remaining])
    seen: set[tuple[str, str]] = set()
    for i in range(0, len(batch), 500):
        chunk = batch[i : i + 500]
        values = ",".join("(?, ?)" for _ in chunk)
        flat = [v for e in chunk for v in (e["team_id"], e["id"])]
        seen.update(
            conn.execute(
                # A join, not ``(a, b) IN (VALUES …)``, which SQLite runs as a table scan.
                f"SELECT team_id, event_id FROM (VALUES {values}) AS v CROSS JOIN usage "
                "ON team_id = v.column1 AND event_id = v.column2",
                flat,
            )
        )
    usage_rows = []
    ledger_rows = []
    for e in batch:
        team = e["team_id"]
        if (team, e["id"]) in seen:
            continue
        seen.add((team, e["id"]))
        charge = 0
        for meter, quantity in e["quantities"].items():
            price, per = LITE_PRICES[(e["model"], meter)]
            charge += quantity * price // per
        usage_rows.append((team, e["id"], charge))
        left = charge
        for grant in grants[team]:
            take = min(left, grant[1])
            if take:
                grant[1] -= take
                left -= take
                credit[team] -= take
                ledger_rows.append((team, grant[0], -take, credit[team]))
            if not left:
                break
    conn.executemany("INSERT INTO usage VALUES (?, ?, ?)", usage_rows)
    conn.executemany(
        "INSERT INTO ledger (team_id, grant_id, amount, balance_after) VALUES (?, ?, ?, ?)",
        ledger_rows,
    )
    conn.executemany(
        "UPDATE grants SET remaining = ? WHERE id = ?",
        [(g[1], g[0]) for gs in grants.values() for g in gs],
    )
    conn.executemany(
        "UPDATE teams SET credit = ? WHERE id = ?", [(v, k) for k, v in credit.items()]
    )
    conn.execute("COMMIT")
    return len(usage_rows)


# --- batches -------------------------------------------------------------------------------


class Batches:
    """Pre-built batches of event dicts, frozen out of the garbage collector's way."""

    def __init__(self, teams: list[str], count: int, prefix: str, at: datetime) -> None:
        self.batches = [c.events(teams, BATCH, f"{prefix}-{b:04d}", at) for b in range(count)]
        gc.collect()
        gc.freeze()

    def release(self) -> None:
        gc.unfreeze()
        self.batches = []
        gc.collect()


# --- in-process, in worker processes -------------------------------------------------------


def _worker(url: str, at: datetime, pipe: Connection) -> None:
    """A worker process with its own context: runs batches of events stamped ``at`` on
    command (teams, batches, prefix, seconds, start time) until sent None."""
    ctx = c.context(url)
    principal = c.service_principal()
    while True:
        command = pipe.recv()
        if command is None:
            break
        teams, count, prefix, seconds, start_at = command
        batches = Batches(teams, count, prefix, at)
        while time.monotonic() < start_at:
            time.sleep(0.001)
        result = c.timed_batches(
            lambda b: ingest_usage(ctx, principal, b).accepted, batches.batches, seconds
        )
        batches.release()
        pipe.send(result)
    ctx.uow.dispose()


def own_shares(teams: list[str], count: int) -> list[list[str]]:
    """Two processes' teams, disjoint: one team each, or half of the 1,000 each."""
    return [[teams[0]], [teams[1]]] if count == 1 else [teams[0::2], teams[1::2]]


class Workers:
    """``count`` processes running ``target(*args, pipe)``: our code (``_worker``) or
    the storage floor (``_floor.postgres_worker``)."""

    def __init__(self, count: int, target: Callable[..., None] = _worker, *args: object) -> None:
        spawn = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        for _ in range(count):
            mine, theirs = spawn.Pipe()
            proc = spawn.Process(target=target, args=(*args, theirs), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)

    def run(self, shares: list[list[str]], count: int, prefix: str, seconds: float) -> float:
        """Each process charges ``count`` batches over its share of the teams, all
        starting at one moment: their events per second together."""
        start_at = time.monotonic() + 1.0 + count * 0.02
        for n, pipe in enumerate(self.pipes):
            pipe.send((shares[n], count, f"{prefix}-w{n}", seconds, start_at))
        results: list[tuple[int, float, float]] = [pipe.recv() for pipe in self.pipes]
        events = sum(r[0] for r in results)
        return float(events / (max(r[2] for r in results) - min(r[1] for r in results)))

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


# --- the benchmark -------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.runs: int = args.runs
        self.warmup = 0 if args.quick else 1
        self.seconds: float = args.seconds
        self.figures: dict[str, Any] = {}
        self.checks: dict[str, Any] = {}
        self.serial = 0
        self.ceilings: dict[str, Callable[[], float]] = {}
        """The ceilings a figure can be measured beside (:meth:`figure`), by name."""

    def prefix(self, name: str) -> str:
        self.serial += 1
        return f"{name}-{self.serial:04d}-{time.time_ns() % 10**9}"

    def figure(
        self,
        key: str,
        label: str,
        measure: Callable[[], float],
        unit: str,
        beside: str | None = None,
    ) -> float:
        """Run ``measure`` (a warm-up, then ``runs`` times) and keep its figures. With
        ``beside``, the name of a ceiling measured earlier in the run, that ceiling is
        measured again right before each run of ``measure``, and each run's ratio to it
        kept: the machine's speed moves within a run, the database side most."""
        if beside is None or beside not in self.ceilings:
            values = c.repeat(measure, self.runs, self.warmup)
            self.figures[key] = c.show(label, values, unit)
            return float(statistics.median(values))
        ceiling, paired = self.ceilings[beside], []

        def measure_beside() -> float:
            paired.append(ceiling())
            return measure()

        values = c.repeat(measure_beside, self.runs, self.warmup)
        paired = paired[self.warmup :]
        ratios = [v / p for v, p in zip(values, paired, strict=True)]
        self.figures[key] = c.show(
            label,
            values,
            unit,
            f"{beside} beside it: {c.fmt(statistics.median(paired))}, "
            f"ratio run by run {statistics.median(ratios):.2f}",
        )
        self.figures[key]["beside"] = {"ceiling": beside, "runs": paired, "ratios": ratios}
        return float(statistics.median(values))

    def batches_for(self, rate_guess: float) -> int:
        """Enough batches for one run at up to ``rate_guess`` events/s (bounded)."""
        return max(4, min(200, int(rate_guess * self.seconds / BATCH) + 2))

    # ceilings

    def pg_ceilings(self, url: str) -> None:
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(CEILING_SCHEMA)
        engine.dispose()
        print("ceilings, PostgreSQL (pgbench)", flush=True)
        for teams in (1, TEAMS):

            def batch(teams: int = teams) -> float:
                return 1000 * c.pgbench(url, C_BATCH_SCRIPT, 2, self.seconds, teams=teams)

            self.ceilings[f"C_batch_{teams}"] = batch
            self.figure(
                f"C_batch_{teams}", f"C_batch, 2 clients, {teams} team(s)/batch", batch, "events/s"
            )
        self.ceilings["C_evt"] = lambda: c.pgbench(
            url, C_EVENT_SCRIPT, SINGLE_CONNECTIONS, self.seconds, teams=TEAMS
        )
        self.figure(
            "C_evt",
            f"C_evt, {SINGLE_CONNECTIONS} clients, spread teams",
            self.ceilings["C_evt"],
            "events/s",
        )
        self.figure(
            "C_hot",
            f"C_hot, {SINGLE_CONNECTIONS} clients, one team",
            lambda: c.pgbench(url, C_EVENT_SCRIPT, SINGLE_CONNECTIONS, self.seconds, teams=1),
            "events/s",
        )

    def lite_ceiling(self, at: datetime) -> None:
        print("ceiling, SQLite (plain sqlite3, WAL, synchronous=NORMAL)", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            conn = sqlite3.connect(Path(folder) / "lite.db", isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(LITE_SCHEMA)
            names = [f"team{n:06d}" for n in range(TEAMS)]
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO teams VALUES (?, ?)", [(t, 10**18) for t in names])
            conn.executemany(
                "INSERT INTO grants VALUES (?, ?, ?, ?)",
                [
                    (f"{t}-g{k}", t, k, 5 * 10**9 if k == 0 else 10**18 - 5 * 10**9)
                    for t in names
                    for k in (0, 1)
                ],
            )
            conn.execute("COMMIT")
            for teams in (1, TEAMS):

                def measure(teams: int = teams) -> float:
                    batches = Batches(
                        names[:teams], self.batches_for(150_000), self.prefix("lite"), at
                    )
                    done, start, end = c.timed_batches(
                        lambda b: lite_charge(conn, b), batches.batches, self.seconds
                    )
                    batches.release()
                    return done / (end - start)

                self.figure(
                    f"C_lite_{teams}", f"C_lite, {teams} team(s)/batch", measure, "events/s"
                )
            conn.close()

    def storage_floor(self, backend: str, at: datetime) -> None:
        """F_rows on ``backend`` (bench/_floor.py): our rows with the plain driver, on one
        connection; on PostgreSQL also on two, shared out as our two-process figures
        share their teams."""
        print(f"floor, {backend} (creditledger's rows and statements, plain driver)", flush=True)
        floor = _floor.Floor(TEAMS)
        writer = _floor.postgres_writer if backend == "postgres" else _floor.sqlite_writer
        with c.scratch_database(backend) as url:
            with writer(url, floor, at) as write:
                for count in (1, TEAMS):

                    def measure(count: int = count) -> float:
                        batches = floor.batches(
                            floor.teams[:count], self.batches_for(30_000), self.prefix("floor"), at
                        )
                        done, start, end = c.timed_batches(write, batches, self.seconds)
                        return done / (end - start)

                    self.figure(
                        f"F_rows_{backend}_{count}",
                        f"F_rows, {backend}, {count} team(s)/batch",
                        measure,
                        "events/s",
                    )
            if backend == "postgres":
                self.storage_floor_two(url, floor, at)

    def storage_floor_two(self, url: str, floor: _floor.Floor, at: datetime) -> None:
        """F_rows on two connections (processes): with teams of their own, as the
        in-process figure with two processes; and both over the same 1,000 teams, as
        two uvicorn workers (and C_batch's two clients) take the batches."""
        teams = floor.teams
        cases = {
            "own_1": own_shares(teams, 1),
            f"own_{TEAMS}": own_shares(teams, TEAMS),
            f"shared_{TEAMS}": [teams, teams],
        }
        workers = Workers(2, _floor.postgres_worker, url, floor, at)
        try:
            for name, shares in cases.items():
                self.figure(
                    f"F_rows_postgres_2c_{name}",
                    f"F_rows, postgres, 2 connections, {name.replace('_', ' ')} team(s)",
                    lambda shares=shares: workers.run(  # type: ignore[misc]
                        shares, self.batches_for(30_000), self.prefix("floor2"), self.seconds
                    ),
                    "events/s",
                )
        finally:
            workers.close()

    def asgi_ceiling(self, at: datetime) -> None:
        print("ceiling, HTTP layer (bare ASGI app, 1 uvicorn worker, orjson)", flush=True)
        names = [f"team{n:06d}" for n in range(TEAMS)]
        bodies = [
            c.raw_request(
                "POST",
                "/v1/usage-events",
                "x",
                orjson.dumps({"events": c.events(names, BATCH, f"asgi-{b}", at)}),
            )
            for b in range(50)
        ]
        with c.Server({}, app="_bare_asgi:app", factory=False) as server:

            def measure() -> float:
                out = c.load(
                    server.port,
                    bodies,
                    connections=HTTP_CONNECTIONS,
                    duration=self.seconds,
                    count_field="accepted",
                )
                return float(out["counted_per_s"])

            self.figure("C_asgi", "C_asgi, 1,000-event POSTs, 1 worker", measure, "events/s")

    # our paths

    def in_process(self, backend: str, ctx: Context, teams: list[str], at: datetime) -> None:
        principal = c.service_principal()
        guess = 60_000.0
        for count in (1, TEAMS):

            def measure(count: int = count) -> float:
                batches = Batches(teams[:count], self.batches_for(guess), self.prefix("ip"), at)
                done, start, end = c.timed_batches(
                    lambda b: ingest_usage(ctx, principal, b).accepted,
                    batches.batches,
                    self.seconds,
                )
                batches.release()
                return done / (end - start)

            self.figure(
                f"{backend}_inproc_1p_{count}",
                f"{backend} in-process, 1 process, {count} team(s)",
                measure,
                "events/s",
            )

    def in_process_workers(self, backend: str, url: str, teams: list[str], at: datetime) -> None:
        workers = Workers(2, _worker, url, at)
        try:
            for count in (1, TEAMS):
                shares = own_shares(teams, count)
                label = "1 team/process" if count == 1 else f"{count} teams"
                self.figure(
                    f"{backend}_inproc_2p_{count}",
                    f"{backend} in-process, 2 processes, {label}",
                    lambda shares=shares: workers.run(  # type: ignore[misc]
                        shares, self.batches_for(50_000), self.prefix("wp"), self.seconds
                    ),
                    "events/s",
                    beside=f"C_batch_{count}" if backend == "postgres" else None,
                )
        finally:
            workers.close()

    def http_batches(
        self, backend: str, url: str, workers: int, token: str, teams: list[str], at: datetime
    ) -> None:
        with c.Server({"CREDITLEDGER_DATABASE_URL": url}, workers=workers) as server:
            for count in (1, TEAMS):

                def measure(count: int = count) -> float:
                    prefix = self.prefix("http")
                    requests = [
                        c.raw_request(
                            "POST",
                            "/v1/usage-events",
                            token,
                            orjson.dumps(
                                {"events": c.events(teams[:count], BATCH, f"{prefix}-{b}", at)}
                            ),
                        )
                        for b in range(self.batches_for(80_000))
                    ]
                    out = c.load(
                        server.port,
                        requests,
                        connections=HTTP_CONNECTIONS,
                        duration=self.seconds,
                        once=True,
                        count_field="accepted",
                    )
                    bad = {k: v for k, v in out["statuses"].items() if k != "200"}
                    if bad:
                        raise RuntimeError(f"HTTP answers other than 200: {bad}")
                    return float(out["counted_per_s"])

                self.figure(
                    f"{backend}_http_{workers}w_{count}",
                    f"{backend} HTTP, {workers} worker(s), {count} team(s)",
                    measure,
                    "events/s",
                    # the goal's figure, measured beside its ceiling
                    beside=f"C_batch_{count}" if backend == "postgres" and count == TEAMS else None,
                )
            hwm = server.rss_kib("VmHWM")
            self.checks[f"{backend}_http_{workers}w_peak_rss_mb"] = {
                str(pid): kib / 1024 for pid, kib in hwm.items()
            }
            print(
                "  server peak RSS (VmHWM) per worker: "
                + ", ".join(f"{kib / 1024:.0f} MB" for kib in hwm.values()),
                flush=True,
            )

    def http_single(
        self,
        url: str,
        token: str,
        teams: list[str],
        at: datetime,
        workers: int = 2,
        kinds: tuple[str, ...] = ("spread", "hot"),
    ) -> dict[str, float]:
        """Single-event POSTs over ``SINGLE_CONNECTIONS`` connections, spread over the
        teams and on one hot team; the figures of a server of ``workers`` other than two
        are named for them (one worker gathers every connection's events)."""
        out: dict[str, float] = {}
        named = "" if workers == 2 else f"_{workers}w"
        picks = {"spread": teams, "hot": teams[:1]}
        with c.Server({"CREDITLEDGER_DATABASE_URL": url}, workers=workers) as server:
            for name in kinds:
                pick = picks[name]
                cpu: list[tuple[float, float]] = []

                shares: list[list[float]] = []

                def measure(
                    pick: list[str] = pick,
                    cpu: list[tuple[float, float]] = cpu,
                    shares: list[list[float]] = shares,
                ) -> float:
                    prefix = self.prefix("one")
                    requests = [
                        c.raw_request(
                            "POST",
                            "/v1/usage-events",
                            token,
                            orjson.dumps(
                                {"events": c.events([pick[n % len(pick)]], 1, f"{prefix}-{n}", at)}
                            ),
                        )
                        for n in range(int(8000 * self.seconds))
                    ]
                    workers, database = server.worker_pids(), c.postgres_pids()
                    before = c.cpu_seconds(workers), c.cpu_seconds(database)
                    each = [c.cpu_seconds([pid]) for pid in workers]
                    result = c.load(
                        server.port,
                        requests,
                        connections=SINGLE_CONNECTIONS,
                        duration=self.seconds,
                        once=True,
                        count_field="accepted",
                    )
                    events = max(1, int(result["counted"]))
                    # How the kernel split the connections between the workers: each
                    # worker's share of their CPU (groups are per process, decision 0027).
                    used = [c.cpu_seconds([pid]) - e for pid, e in zip(workers, each, strict=True)]
                    shares.append(
                        sorted((round(u / max(sum(used), 1e-9), 2) for u in used), reverse=True)
                    )
                    cpu.append(
                        (
                            1000 * (c.cpu_seconds(workers) - before[0]) / events,
                            1000 * (c.cpu_seconds(c.postgres_pids()) - before[1]) / events,
                        )
                    )
                    return float(result["counted_per_s"])

                out[name] = self.figure(
                    f"postgres_single_{name}{named}",
                    f"postgres single-event POSTs, 8 conns, {workers} worker(s), {name}",
                    measure,
                    "events/s",
                    beside="C_evt" if (name, workers) == ("spread", 2) else None,
                )
                # Where the machine's two cores go, per event: the profile of the gap.
                kept = cpu[-self.runs :]
                self.figures[f"postgres_single_{name}{named}_cpu_ms_per_event"] = {
                    "workers": [round(w, 3) for w, _ in kept],
                    "postgres": [round(p, 3) for _, p in kept],
                    "worker_shares": shares[-self.runs :],
                }
                print(
                    f"    CPU per event: workers {statistics.median(w for w, _ in kept):.2f} ms, "
                    f"PostgreSQL {statistics.median(p for _, p in kept):.2f} ms; "
                    f"workers' shares of it by run: {shares[-self.runs :]}",
                    flush=True,
                )
        return out

    def verify(self, backend: str, ctx: Context) -> None:
        started = time.monotonic()
        problems = list(ctx.invariants.violations())
        took = time.monotonic() - started
        self.checks[f"{backend}_verify"] = problems[:20]
        state = "clean" if not problems else f"{len(problems)} VIOLATION(S): {problems[:3]}"
        print(f"  verify ({backend} benchmark database, {took:.0f} s): {state}", flush=True)
        if problems:
            raise SystemExit(f"ledger invariants violated on {backend}")


def ratio_line(label: str, value: float, ceiling: float, goal: float | None, ceil_name: str) -> str:
    ratio = value / ceiling if ceiling else 0.0
    shown = f"{ratio:.3f}" if ratio < 0.1 else f"{ratio:.2f}"
    text = f"  {label:<46} {c.fmt(value, 'events/s'):>16} = {shown} × {ceil_name}"
    if goal is not None:
        text += f"   goal ≥ {goal:.2f}×: {c.verdict(ratio, goal)}"
    return text


def beside_line(label: str, figure: dict[str, Any], goal: float | None) -> list[str]:
    """The ratio of a figure measured beside its ceiling, run by run (``Bench.figure``)."""
    beside = figure.get("beside")
    if beside is None:
        return []
    ratio = statistics.median(beside["ratios"])
    text = f"    {label}, beside {beside['ceiling']} run by run: ratio {ratio:.2f}"
    if goal is not None:
        text += f"   goal ≥ {goal:.2f}×: {c.verdict(ratio, goal)}"
    return [text]


def floor_lines(backend: str, f: dict[str, Any], ceiling: str, name: str) -> list[str]:
    """F_rows against the ceiling, and the in-process figures against F_rows."""
    out = [f"Storage floor F_rows on {backend} (bench/_floor.py)"]
    for count in (1, TEAMS):
        value = f[f"F_rows_{backend}_{count}"]["median"]
        out.append(
            ratio_line(
                f"F_rows, {count} team(s)", value, f[f"{ceiling}_{count}"]["median"], None, name
            )
        )
    for count in (1, TEAMS):
        out.append(
            ratio_line(
                f"in-process, 1 process, {count} team(s)",
                f[f"{backend}_inproc_1p_{count}"]["median"],
                f[f"F_rows_{backend}_{count}"]["median"],
                None,
                "F_rows",
            )
        )
    return out


def two_connection_floor_lines(f: dict[str, Any]) -> list[str]:
    """F_rows on two connections against C_batch (the best this schema allows the
    two-process and two-worker figures), and those figures against it."""
    out = ["Storage floor F_rows on postgres, 2 connections"]
    for name, figure, label in (
        ("own_1", "inproc_2p_1", "in-process, 2 processes, 1 team each"),
        (f"own_{TEAMS}", f"inproc_2p_{TEAMS}", f"in-process, 2 processes, {TEAMS} teams"),
        (f"shared_{TEAMS}", f"http_2w_{TEAMS}", f"HTTP, 2 workers, {TEAMS} teams"),
    ):
        floor = f[f"F_rows_postgres_2c_{name}"]["median"]
        ceiling = f["C_batch_1" if name == "own_1" else f"C_batch_{TEAMS}"]["median"]
        out.append(
            ratio_line(
                f"F_rows, 2 conns, {name.replace('_', ' ')}", floor, ceiling, None, "C_batch"
            )
        )
        out.append(ratio_line(label, f[f"postgres_{figure}"]["median"], floor, None, "F_rows 2c"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short run per figure")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--seconds", type=float, default=None, help="length of one run")
    parser.add_argument(
        "--backends", default="postgres,sqlite", help="postgres, sqlite or both (default)"
    )
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.0 if args.quick else 2.0)
    backends = args.backends.split(",")
    bench = Bench(args)
    began = time.monotonic()
    print(
        f"ingest: {args.runs} run(s) of {args.seconds:.1f} s per figure after "
        f"{bench.warmup} warm-up; load average {c.machine_load()[0]:.1f}; "
        f"uvicorn HTTP: {c.http_implementation()}",
        flush=True,
    )
    f = bench.figures
    lines: list[str] = []
    at = datetime.now().astimezone()
    bench.asgi_ceiling(at)
    if "postgres" in backends:
        with c.scratch_database("postgres") as url:
            ctx = c.context(url)
            teams, _, service = c.seed(ctx, TEAMS)
            at = ctx.clock.now()  # events must not predate the price book
            bench.pg_ceilings(url)
            bench.storage_floor("postgres", at)
            print("PostgreSQL, creditledger", flush=True)
            bench.in_process("postgres", ctx, teams, at)
            bench.in_process_workers("postgres", url, teams, at)
            for workers in (1, 2):
                bench.http_batches("postgres", url, workers, service, teams, at)
            single = bench.http_single(url, service, teams, at)
            spread, hot = single["spread"], single["hot"]
            one_worker = bench.http_single(url, service, teams, at, 1, ("spread",))["spread"]
            bench.verify("postgres", ctx)
            ctx.uow.dispose()
        cb1, cbn = f["C_batch_1"]["median"], f[f"C_batch_{TEAMS}"]["median"]
        lines.append("PostgreSQL (ratio to C_batch with the same teams per batch)")
        for key, label, goal in (
            ("inproc_1p", "in-process, 1 process", None),
            ("inproc_2p", "in-process, 2 processes", GOAL_INPROC_2P_PG),
            ("http_1w", "HTTP, 1 worker", GOAL_HTTP_PG),
            ("http_2w", "HTTP, 2 workers", GOAL_HTTP_PG),
        ):
            for count, ceiling in ((1, cb1), (TEAMS, cbn)):
                value = f[f"postgres_{key}_{count}"]["median"]
                # The HTTP goal is set for batches over 1,000 teams; one team is shown.
                shown_goal = None if key.startswith("http") and count != TEAMS else goal
                lines.append(
                    ratio_line(f"{label}, {count} team(s)", value, ceiling, shown_goal, "C_batch")
                )
                lines += beside_line(label, f[f"postgres_{key}_{count}"], shown_goal)
        lines += floor_lines("postgres", f, "C_batch", "C_batch")
        lines += two_connection_floor_lines(f)
        lines.append(
            ratio_line(
                "single-event POSTs, spread", spread, f["C_evt"]["median"], GOAL_SINGLE, "C_evt"
            )
        )
        lines += beside_line("single-event POSTs", f["postgres_single_spread"], GOAL_SINGLE)
        lines.append(
            ratio_line(
                "single-event POSTs, spread, 1 worker",
                one_worker,
                f["C_evt"]["median"],
                None,
                "C_evt",
            )
        )
        lines.append(
            ratio_line("single-event POSTs, hot team", hot, f["C_hot"]["median"], None, "C_hot")
        )
        lines.append(
            ratio_line("hot vs spread, single-event POSTs", hot, spread, GOAL_HOT, "spread")
        )
        for workers in (1, 2):
            b1 = f[f"postgres_http_{workers}w_1"]["median"]
            bn = f[f"postgres_http_{workers}w_{TEAMS}"]["median"]
            lines.append(
                ratio_line(
                    f"1 team vs 1,000 teams, HTTP {workers}w batches", b1, bn, GOAL_HOT, "spread"
                )
            )
        lines.append(
            ratio_line(
                "HTTP 1 worker, 1,000 teams vs C_asgi",
                f[f"postgres_http_1w_{TEAMS}"]["median"],
                f["C_asgi"]["median"],
                None,
                "C_asgi",
            )
        )
    if "sqlite" in backends:
        bench.lite_ceiling(at)
        bench.storage_floor("sqlite", at)
        with c.scratch_database("sqlite") as url:
            ctx = c.context(url)
            teams, _, service = c.seed(ctx, TEAMS)
            at = ctx.clock.now()
            print("SQLite, creditledger", flush=True)
            bench.in_process("sqlite", ctx, teams, at)
            bench.in_process_workers("sqlite", url, teams, at)
            bench.http_batches("sqlite", url, 1, service, teams, at)
            bench.verify("sqlite", ctx)
            ctx.uow.dispose()
        lines.append("SQLite (ratio to C_lite with the same teams per batch)")
        for key, label, goal in (
            ("inproc_1p", "in-process, 1 process", GOAL_SQLITE),
            ("inproc_2p", "in-process, 2 processes", None),
            ("http_1w", "HTTP, 1 worker", None),
        ):
            for count in (1, TEAMS):
                value = f[f"sqlite_{key}_{count}"]["median"]
                ceiling = f[f"C_lite_{count}"]["median"]
                lines.append(
                    ratio_line(f"{label}, {count} team(s)", value, ceiling, goal, "C_lite")
                )
        lines += floor_lines("sqlite", f, "C_lite", "C_lite")
    rss = [mb for key, per in bench.checks.items() if key.endswith("rss_mb") for mb in per.values()]
    if rss:
        peak = max(rss)
        lines.append(
            f"  server peak RSS, largest worker: {peak:.0f} MB   goal ≤ {GOAL_RSS_MB} MB: "
            f"{c.verdict(peak, GOAL_RSS_MB, higher_is_better=False)}"
        )
    c.finish(
        "ingest",
        began,
        lines,
        args,
        bench.warmup,
        {
            "batch": BATCH,
            "teams": TEAMS,
            "http_connections": HTTP_CONNECTIONS,
            "single_connections": SINGLE_CONNECTIONS,
            "http": c.http_implementation(),
        },
        figures=bench.figures,
        checks=bench.checks,
    )


if __name__ == "__main__":
    main()
