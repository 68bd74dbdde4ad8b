"""Helpers shared by the benchmarks: scratch databases, seeding, servers, load, results.

Not a benchmark itself (``make bench`` runs only the scripts without a leading underscore).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from creditledger.adapters.db.migrate import upgrade
from creditledger.bootstrap import build_context
from creditledger.config import Settings
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.money import dollars
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.payments import settle_offline_purchase
from creditledger.services.prices import PriceInput, set_price_book
from creditledger.services.tokens import create_platform_token

PG_ADMIN_URL = os.environ.get(
    "CREDITLEDGER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RESULTS = Path(__file__).parent / "results"
MODELS = ("llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen-2.5-72b")


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    """A fresh, migrated database URL that is removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            _migrate(url)
            yield url
        return
    name = f"cl_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def checkpoint(url: str) -> None:
    """On PostgreSQL, write out what earlier scripts and the seeding left in the
    write-ahead log now: a checkpoint that falls due (``max_wal_size``) during a latency
    figure writes for 15 s or more beside it, on the same two cores."""
    if not url.startswith("postgresql"):
        return
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text("CHECKPOINT"))
    admin.dispose()


def _migrate(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    upgrade(engine)
    engine.dispose()


def context(url: str) -> Context:
    return build_context(
        Settings.model_validate(
            {"database_url": url, "password_time_cost": 1, "password_memory_kib": 8}
        )
    )


def seed(ctx: Context, teams: int, credit: str = "1000000.00") -> tuple[list[str], str, str]:
    """A price book, ``teams`` teams each with a promotional and a prepaid grant.

    Returns (team ids, operator token, service token)."""
    operator = create_platform_token(ctx, TokenKind.OPERATOR, "bench operator")
    service = create_platform_token(ctx, TokenKind.SERVICE, "bench gateway")
    system = Principal(TokenKind.OPERATOR, "bench")
    set_price_book(
        ctx,
        system,
        [
            PriceInput("serverless", m, None, meter, price, 1_000_000)
            for m in MODELS
            for meter, price in (("input_tokens", "0.20"), ("output_tokens", "0.60"))
        ],
    )
    ids: list[str] = []
    with ctx.uow() as uow:
        now = ctx.clock.now()
        for n in range(teams):
            team_id = uow.new_id("team")
            uow.teams.add(team_id, f"bench team {n}", now)
            promo = NewGrant(GrantKind.PROMOTIONAL, GrantSource.MANUAL, dollars("5.00"), note="b")
            issue_grant(uow, ctx, team_id, promo, "bench credit")
            ids.append(team_id)
        uow.commit()
    for team_id in ids:
        # Prepaid credit comes only from payments (invariant I6).
        settle_offline_purchase(ctx, team_id, dollars(credit), "pi_bench")
    return ids, operator, service


def events(team_ids: list[str], count: int, prefix: str, at: datetime) -> list[dict[str, Any]]:
    stamp = at.isoformat()
    return [
        {
            "id": f"{prefix}-{n:08d}",
            "team_id": team_ids[n % len(team_ids)],
            "product": "serverless",
            "model": MODELS[n % len(MODELS)],
            "timestamp": stamp,
            "quantities": {"input_tokens": 100 + n % 900, "output_tokens": 37 + n % 300},
        }
        for n in range(count)
    ]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "spread_pct": 100 * (max(values) - min(values)) / statistics.median(values)
        if statistics.median(values)
        else 0.0,
    }


def record(name: str, figures: dict[str, Any]) -> Path:
    """Write the figures, with the machine, commit and date, to bench/results/."""
    RESULTS.mkdir(exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    stamp = datetime.now(UTC)
    doc = {
        "benchmark": name,
        "date": stamp.isoformat(timespec="seconds"),
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "figures": figures,
    }
    path = RESULTS / f"{name}-{stamp.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def finish(
    name: str,
    began: float,
    lines: list[str],
    args: argparse.Namespace,
    warmup: int,
    settings: dict[str, Any],
    **recorded: Any,
) -> Path:
    """End a benchmark: print its summary and how long it took, and record the run's
    settings (``--quick``, ``--runs``, ``--seconds``, the warm-up, then the script's own),
    the figures (``recorded``), the summary, the time and the machine's load at the end."""
    print("summary (medians)")
    print("\n".join(lines))
    took = time.monotonic() - began
    load = machine_load()[0]
    print(f"took {took:.0f} s; load average now {load:.1f}")
    path = record(
        name,
        {
            "settings": {
                "quick": args.quick,
                "runs": args.runs,
                "seconds": args.seconds,
                "warmup": warmup,
                **settings,
            },
            **recorded,
            "summary": lines,
            "took_s": took,
            "load_average_at_end": load,
        },
    )
    print(f"recorded {path}")
    return path


# --- figures -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


B = TypeVar("B")


def timed_batches(
    charge: Callable[[B], int], batches: Sequence[B], s: float
) -> tuple[int, float, float]:
    """Charge batches until ``s`` seconds pass or they run out: (events, start, end)."""
    done = 0
    start = time.monotonic()
    for batch in batches:
        done += charge(batch)
        if time.monotonic() - start >= s:
            break
    return done, start, time.monotonic()


def repeat(measure: Callable[[], float], runs: int, warmup: int = 1) -> list[float]:
    """``measure`` called ``warmup`` times (thrown away), then ``runs`` times."""
    for _ in range(warmup):
        measure()
    return [measure() for _ in range(runs)]


def fmt(value: float, unit: str = "") -> str:
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def show(label: str, values: list[float], unit: str, extra: str = "") -> dict[str, Any]:
    """Print one figure (median and spread of its runs) and return it for ``record``."""
    s = summary(values)
    line = (
        f"  {label:<46} {fmt(s['median'], unit):>16}  "
        f"(min {fmt(s['min'])}, max {fmt(s['max'])}, spread {s['spread_pct']:.0f} %)"
    )
    print(line + (f"  {extra}" if extra else ""), flush=True)
    return {"unit": unit, "runs": values, **s}


def verdict(value: float, goal: float, higher_is_better: bool = True) -> str:
    met = value >= goal if higher_is_better else value <= goal
    return "MET" if met else "MISSED"


def machine_load() -> tuple[float, float, float]:
    return os.getloadavg()


# --- processes ------------------------------------------------------------------------


def proc_status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM), 0 when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU time the processes ``pids`` used so far (from /proc, Linux;
    a process gone counts 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (its backends included)."""
    found = subprocess.run(["pgrep", "-x", "postgres"], check=False, capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc, Linux)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        out += [int(c) for c in text.split()]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_implementation() -> str:
    """What uvicorn's ``--http auto`` picks here: httptools when installed, else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


class Server:
    """A uvicorn server subprocess on loopback serving ``app`` (an ASGI factory)."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int = 1,
        app: str = "creditledger.entrypoints.api.main:app_factory",
        factory: bool = True,
    ) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", str(workers)]
        command += ["--log-level", "warning", "--no-access-log"]
        if factory:
            command.append("--factory")
        full_env = {**os.environ, "CREDITLEDGER_RUN_JOBS_IN_PROCESS": "false", **env}
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).parent), full_env.get("PYTHONPATH", "")]
        )
        self.workers = workers
        self.proc = subprocess.Popen(command, env=full_env, stdin=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            if self.workers == 1 or len(self.pids()) > self.workers:
                time.sleep(0.5 if self.workers > 1 else 0.0)
                return
            time.sleep(0.2)
        raise RuntimeError("the server did not answer /healthz in time")

    def pids(self) -> list[int]:
        """The server process and its workers (uvicorn forks one per worker)."""
        return [self.proc.pid, *children_of(self.proc.pid)]

    def worker_pids(self) -> list[int]:
        return [self.proc.pid] if self.workers == 1 else children_of(self.proc.pid)

    def rss_kib(self, field: str = "VmRSS") -> dict[int, int]:
        return {pid: proc_status_kib(pid, field) for pid in self.worker_pids()}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def raw_request(
    method: str, path: str, token: str | None = None, body: bytes | None = None
) -> bytes:
    """One pre-encoded HTTP/1.1 request (keep-alive), ready to write to a socket."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Load:
    """The load generator (``_loadgen.py``) running as a separate process.

    ``rate`` > 0: open loop at that many requests/s, latency counted from the scheduled start;
    0: closed loop, each connection sends its next request when the previous one is answered.
    ``once``: each request is sent at most once (unique bodies such as usage batches).
    """

    def __init__(
        self,
        port: int,
        requests: Sequence[bytes],
        *,
        connections: int,
        duration: float,
        rate: float = 0.0,
        once: bool = False,
        count_field: str | None = None,
        max_requests: int = 1_000_000,
    ) -> None:
        import pickle

        with tempfile.NamedTemporaryFile(suffix=".requests", delete=False) as f:
            pickle.dump(list(requests), f, protocol=pickle.HIGHEST_PROTOCOL)
            self.path = f.name
        command = [sys.executable, str(Path(__file__).parent / "_loadgen.py"), self.path]
        command += ["--port", str(port), "--connections", str(connections)]
        command += ["--duration", str(duration), "--rate", str(rate)]
        command += ["--max-requests", str(max_requests)]
        if once:
            command.append("--once")
        if count_field:
            command += ["--count-field", count_field]
        self.timeout = duration + 120
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def finish(self) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        finally:
            os.unlink(self.path)
        if self.proc.returncode != 0:
            raise RuntimeError(f"load generator failed: {err.strip()[-2000:]}")
        result: dict[str, Any] = json.loads(out)
        return result


def load(port: int, requests: Sequence[bytes], **options: Any) -> dict[str, Any]:
    """Run the load generator to the end; see :class:`Load` for the options."""
    return Load(port, requests, **options).finish()


# --- PostgreSQL ------------------------------------------------------------------------


def libpq_url(url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as libpq (psql, pgbench, psycopg) takes it."""
    parsed = sa.make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def pgbench(url: str, script: str, clients: int, seconds: float, **defines: int) -> float:
    """Transactions per second of ``script`` run by pgbench on the database at ``url``."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        command = ["pgbench", "-n", "-c", str(clients), "-j", str(min(clients, 4))]
        command += ["-T", str(max(1, round(seconds))), "-f", path]
        for key, value in defines.items():
            command += ["-D", f"{key}={value}"]
        command.append(libpq_url(url))
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        match = re.search(r"tps = ([\d.]+)", done.stdout)
        if done.returncode != 0 or match is None:
            raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-2000:]}")
        return float(match.group(1))
    finally:
        os.unlink(path)


def service_principal() -> Principal:
    return Principal(TokenKind.SERVICE, "bench")
