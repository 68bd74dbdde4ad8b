"""Usage intake on NATS JetStream: from publish to committed charge, beside the HTTP
batch path and C_batch measured in the same run (docs/decisions/0025).

    .venv/bin/python bench/intake.py             # full run, ~4 minutes
    .venv/bin/python bench/intake.py --quick     # one short run per figure
    .venv/bin/python bench/intake.py --sync-server PATH   # also a server that syncs
                                                          # every write (nats-server ≥ 2.10)

Figures, PostgreSQL, 1,000 teams, events of bench/_common.py:

- intake, 1 and 2 `creditledger consume` workers: ``--events`` events published by this
  process as a gateway would, timed from the first publish to the moment the database
  holds every one of them charged;
- publish alone: how fast the stream acknowledges the same events (no worker running);
- a burst of ``--burst`` events published at once while 2 workers run: publishes the
  stream refused (goal: none), the most usage waiting in the stream, time to drain;
- the HTTP batch path (1,000-event POSTs, 4 connections, 1 and 2 uvicorn workers, as
  bench/ingest.py measures it) and C_batch (pgbench, 2 clients, 1,000 teams per batch).

Goal: 2 workers ≥ the HTTP batch path; the burst is never refused at the gateway.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

import _common as c
from creditledger.adapters.db import tables
from creditledger.adapters.streams.connection import NatsLoop
from creditledger.adapters.streams.publish import PublishResult, outgoing, publish_messages
from creditledger.adapters.streams.setup import StreamLimits, setup_streams
from creditledger.domain.intake import IntakeNames
from ingest import C_BATCH_SCRIPT, CEILING_SCHEMA, TEAMS, Bench

GOAL_VS_HTTP = 1.0  # 2 workers × the HTTP batch path, 1 worker
STREAM_BYTES = 1024**3
"""The room of the bench's stream (set aside on the server while it exists)."""


class Consumers:
    """``count`` `creditledger consume` processes on the bench database."""

    started: ClassVar[list[Consumers]] = []

    def __init__(self, env: dict[str, str], count: int, wait: bool = True) -> None:
        Consumers.started.append(self)
        full = {**os.environ, **env}
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "creditledger.entrypoints.cli", "consume"],
                env=full,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(count)
        ]
        time.sleep(2.0 if wait else 0.0)  # start-up: imports, the database, the consumer
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError("a consume worker exited on start")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Intake:
    def __init__(self, url: str, nats_url: str, teams: list[str], at: datetime) -> None:
        self.url = url
        self.nats_url = nats_url
        self.teams = teams
        self.at = at
        self.engine = sa.create_engine(url, pool_size=1)  # polled often: one connection
        tag = secrets.token_hex(3)
        self.names = IntakeNames(f"bench{tag}.usage", f"BENCH{tag.upper()}", "creditledger")
        setup_streams(nats_url, self.names, StreamLimits(max_bytes=STREAM_BYTES))
        self.env = {
            "CREDITLEDGER_DATABASE_URL": url,
            "CREDITLEDGER_NATS_URL": nats_url,
            "CREDITLEDGER_NATS_SUBJECT_PREFIX": self.names.prefix,
            "CREDITLEDGER_NATS_STREAM": self.names.stream,
            "CREDITLEDGER_RUN_JOBS_IN_PROCESS": "false",
        }
        self.serial = 0

    def messages(self, count: int) -> list[Any]:
        self.serial += 1
        prefix = f"nats-{self.names.stream}-{self.serial:03d}-{time.time_ns() % 10**9}"
        return [outgoing(self.names, e) for e in c.events(self.teams, count, prefix, self.at)]

    def charged(self) -> int:
        with self.engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(tables.usage_events)
            ).scalar()
        return int(count or 0)

    def wait_charged(self, target: int, timeout: float = 600.0) -> float:
        until = time.monotonic() + timeout
        while self.charged() < target:
            if time.monotonic() > until:
                raise RuntimeError(f"only {self.charged()} of {target} events were charged")
            time.sleep(0.05)
        return time.monotonic()

    def end_to_end(self, count: int) -> float:
        """events/s from the first publish to the last commit (workers running)."""
        messages = self.messages(count)
        target = self.charged() + count
        started = time.monotonic()
        publisher = threading.Thread(target=publish_messages, args=(self.nats_url, messages))
        publisher.start()
        done = self.wait_charged(target)
        publisher.join()
        return count / (done - started)

    def drain(self, count: int, workers: int) -> float:
        """events/s of ``workers`` started on a backlog of ``count`` events: the billing
        side's capacity, without a publisher sharing the machine."""
        publish_messages(self.nats_url, self.messages(count))
        target = self.charged() + count
        consumers = Consumers(self.env, workers, wait=False)
        try:
            first = self.charged()
            while first == target - count:
                time.sleep(0.01)
                first = self.charged()
            started = time.monotonic()
            done = self.wait_charged(target)
        finally:
            consumers.stop()
        return (target - first) / (done - started)

    def publish_only(self, count: int) -> float:
        """events/s the stream acknowledges (nobody consuming; drained after)."""
        messages = self.messages(count)
        started = time.monotonic()
        result = publish_messages(self.nats_url, messages)
        took = time.monotonic() - started
        if result.retried:
            print(f"    ({result.retried} publishes sent again)", flush=True)
        return count / took

    def lag(self) -> int:
        async def read(conn: NatsLoop) -> int:
            info = await conn.nc.jetstream().consumer_info(self.names.stream, self.names.consumer)
            return int(info.num_pending + info.num_ack_pending)

        conn = NatsLoop(self.nats_url, "bench lag")
        try:
            return conn.run(read(conn), 10)
        finally:
            conn.close()

    def burst(self, count: int) -> dict[str, Any]:
        """``count`` events at once with 2 workers running: refusals, lag, drain time."""
        messages = self.messages(count)
        target = self.charged() + count
        samples: list[tuple[float, int]] = []
        outcome: list[tuple[PublishResult, float]] = []
        started = time.monotonic()

        def publish() -> None:
            result = publish_messages(self.nats_url, messages)
            outcome.append((result, time.monotonic() - started))

        publisher = threading.Thread(target=publish)
        publisher.start()
        while self.charged() < target:
            samples.append((time.monotonic() - started, self.lag()))
            time.sleep(0.25)
        drained = time.monotonic() - started
        publisher.join()
        result, took = outcome[0]
        return {
            "events": count,
            "published": result.published,
            "refused_then_sent_again": result.retried,
            "publish_seconds": took,
            "publish_events_per_s": count / took,
            "max_lag": max((lag for _, lag in samples), default=0),
            "drain_seconds": drained,
            "end_to_end_events_per_s": count / drained,
            "lag_samples": samples,
        }

    def close(self) -> None:
        """Delete the bench's streams, and let go of the database."""

        async def delete(conn: NatsLoop) -> None:
            js = conn.nc.jetstream()
            for stream in (self.names.stream, self.names.rejected_stream):
                await js.delete_stream(stream)

        conn = NatsLoop(self.nats_url, "bench cleanup")
        try:
            conn.run(delete(conn), 10)
        finally:
            conn.close()
        self.engine.dispose()


class OwnServer:
    """A nats-server of the bench's own: sync every write, its store in a temp folder."""

    def __init__(self, binary: str) -> None:
        self.folder = tempfile.TemporaryDirectory()
        self.port = c.free_port()
        config = Path(self.folder.name) / "nats.conf"
        config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f"jetstream {{\n  store_dir: {self.folder.name}/store\n  sync_interval: always\n}}\n"
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"nats://127.0.0.1:{self.port}"
        time.sleep(1.0)
        if self.proc.poll() is not None:
            raise RuntimeError(f"{binary} did not start with sync_interval: always")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.folder.cleanup()


def main() -> None:
    try:
        run()
    finally:
        for consumers in Consumers.started:
            consumers.stop()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short run per figure")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--seconds", type=float, default=None, help="length of one HTTP run")
    parser.add_argument("--events", type=int, default=None, help="events per intake run")
    parser.add_argument("--burst", type=int, default=200_000, help="events in the burst")
    parser.add_argument("--nats-url", default=os.environ.get("CREDITLEDGER_NATS_URL"))
    parser.add_argument("--sync-server", help="a nats-server binary to run with sync always")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.0 if args.quick else 2.0)
    args.events = args.events or (20_000 if args.quick else 60_000)
    args.nats_url = args.nats_url or "nats://127.0.0.1:4222"
    bench = Bench(args)
    began = time.monotonic()
    print(
        f"intake: {args.runs} run(s) per figure after {bench.warmup} warm-up; "
        f"{args.events} events per intake run; load average {c.machine_load()[0]:.1f}",
        flush=True,
    )
    f = bench.figures
    with c.scratch_database("postgres") as url:
        ctx = c.context(url)
        teams, _, service = c.seed(ctx, TEAMS)
        at = ctx.clock.now()  # events must not predate the price book
        ctx.uow.dispose()
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(CEILING_SCHEMA)
        engine.dispose()
        print("ceiling (pgbench)", flush=True)
        bench.figure(
            f"C_batch_{TEAMS}",
            f"C_batch, 2 clients, {TEAMS} teams/batch",
            lambda: 1000 * c.pgbench(url, C_BATCH_SCRIPT, 2, args.seconds, teams=TEAMS),
            "events/s",
        )
        print("HTTP batch path (bench/ingest.py's)", flush=True)
        for workers in (1, 2):
            bench.http_batches("postgres", url, workers, service, teams, at)
        print("NATS intake", flush=True)
        intake = Intake(url, args.nats_url, teams, at)
        bench.figure(
            "publish_only",
            "publish alone (stream acknowledgements)",
            lambda: intake.publish_only(args.events),
            "events/s",
        )
        # What publish_only left in the stream is charged before the workers are timed.
        left = intake.charged() + args.events * (args.runs + bench.warmup)
        consumers = Consumers(intake.env, 1)
        intake.wait_charged(left)
        for count in (1, 2):
            if count == 2:
                consumers = Consumers(intake.env, 2)
            bench.figure(
                f"intake_{count}c",
                f"intake, {count} worker(s), publish → commit",
                lambda: intake.end_to_end(args.events),
                "events/s",
            )
            consumers.stop()
        for count in (1, 2):
            bench.figure(
                f"drain_{count}c",
                f"intake, {count} worker(s) on a backlog",
                lambda count=count: intake.drain(args.events, count),  # type: ignore[misc]
                "events/s",
            )
        consumers = Consumers(intake.env, 2)
        print(f"burst of {args.burst} events, 2 workers", flush=True)
        burst = intake.burst(args.burst)
        consumers.stop()
        bench.checks["burst"] = burst
        print(
            f"  published {burst['published']} in {burst['publish_seconds']:.1f} s "
            f"({burst['publish_events_per_s']:,.0f}/s), refused and sent again: "
            f"{burst['refused_then_sent_again']}; most waiting {burst['max_lag']:,}; "
            f"all charged after {burst['drain_seconds']:.1f} s "
            f"({burst['end_to_end_events_per_s']:,.0f} events/s)",
            flush=True,
        )
        intake.close()
        if args.sync_server:
            server = OwnServer(args.sync_server)
            try:
                synced = Intake(url, server.url, teams, at)
                bench.figure(
                    "publish_only_sync_always",
                    "publish alone, sync_interval: always",
                    lambda: synced.publish_only(args.events),
                    "events/s",
                )
                left = synced.charged() + args.events * (args.runs + bench.warmup)
                consumers = Consumers(synced.env, 2)
                synced.wait_charged(left)
                bench.figure(
                    "intake_2c_sync_always",
                    "intake, 2 workers, sync_interval: always",
                    lambda: synced.end_to_end(args.events),
                    "events/s",
                )
                consumers.stop()
                synced.close()
            finally:
                server.stop()
        ctx = c.context(url)
        bench.verify("postgres", ctx)
        ctx.uow.dispose()

    cb = f[f"C_batch_{TEAMS}"]["median"]
    http1 = f[f"postgres_http_1w_{TEAMS}"]["median"]
    http2 = f[f"postgres_http_2w_{TEAMS}"]["median"]
    lines = ["PostgreSQL, 1,000 teams (ratio to C_batch, and to the HTTP batch path)"]
    for key, label in (("intake_1c", "intake, 1 worker"), ("intake_2c", "intake, 2 workers")):
        value = f[key]["median"]
        lines.append(
            f"  {label:<34} {c.fmt(value, 'events/s'):>16} = {value / cb:.2f} × C_batch, "
            f"{value / http1:.2f} × HTTP 1 worker, {value / http2:.2f} × HTTP 2 workers"
        )
    for key, label in (
        ("drain_1c", "1 worker on a backlog"),
        ("drain_2c", "2 workers on a backlog"),
    ):
        value = f[key]["median"]
        lines.append(
            f"  {label:<34} {c.fmt(value, 'events/s'):>16} = {value / cb:.2f} × C_batch, "
            f"{value / http1:.2f} × HTTP 1 worker, {value / http2:.2f} × HTTP 2 workers"
        )
    for key, label in (
        (f"postgres_http_1w_{TEAMS}", "HTTP, 1 worker"),
        (f"postgres_http_2w_{TEAMS}", "HTTP, 2 workers"),
        ("publish_only", "publish alone"),
    ):
        lines.append(f"  {label:<34} {c.fmt(f[key]['median'], 'events/s'):>16}")
    best_http = max(http1, http2)
    for key, label in (("intake_2c", "publish → commit"), ("drain_2c", "on a backlog")):
        ratio = f[key]["median"] / best_http
        lines.append(
            f"  2 workers ({label}) vs the faster HTTP figure: {ratio:.2f} ×   "
            f"goal ≥ {GOAL_VS_HTTP:.1f}×: {c.verdict(ratio, GOAL_VS_HTTP)}"
        )
    burst = bench.checks["burst"]
    lines.append(
        f"  burst of {burst['events']:,}: refused at the gateway "
        f"{burst['refused_then_sent_again']} (goal 0: "
        f"{'MET' if burst['refused_then_sent_again'] == 0 else 'MISSED'}), most waiting "
        f"{burst['max_lag']:,}, drained in {burst['drain_seconds']:.1f} s"
    )
    if "publish_only_sync_always" in f:
        fast, slow = f["publish_only"]["median"], f["publish_only_sync_always"]["median"]
        sync_ratio = f["intake_2c_sync_always"]["median"] / f["intake_2c"]["median"]
        lines.append(
            f"  sync_interval always: publish {slow / fast:.2f} × the default server's, "
            f"intake with 2 workers {sync_ratio:.2f} ×"
        )
    c.finish(
        "intake",
        began,
        lines,
        args,
        bench.warmup,
        {
            "events": args.events,
            "burst": args.burst,
            "teams": TEAMS,
            "nats": args.nats_url,
            "sync_server": args.sync_server,
        },
        figures=bench.figures,
        checks=bench.checks,
    )


if __name__ == "__main__":
    main()
