"""Usage intake on NATS JetStream with real processes (docs/decisions/0025): gateways
publish, `creditledger consume` workers share one durable consumer, and whatever dies
(a worker by kill -9, the NATS server itself) every event is charged exactly once.

The NATS server is the local one (``CREDITLEDGER_TEST_NATS_URL``, default
127.0.0.1:4222); each test uses subjects and streams of its own, so tests running at
once never meet. The restart test starts a server of its own (the ``nats-server`` binary,
``CREDITLEDGER_TEST_NATS_SERVER`` to choose another) on a free port with its own store,
configured to sync every write when the binary can. When NATS does not answer, these
tests are skipped, unless ``CREDITLEDGER_REQUIRE_NATS=1`` (as in CI), which fails them.

The main test publishes ``CREDITLEDGER_INTAKE_EVENTS`` events (default 50,000)."""

from __future__ import annotations

import asyncio
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.db import tables
from creditledger.adapters.db.migrate import upgrade
from creditledger.adapters.streams.connection import NatsLoop
from creditledger.adapters.streams.publish import Outgoing, outgoing, publish_messages
from creditledger.adapters.streams.setup import StreamLimits, setup_streams
from creditledger.bootstrap import build_context
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.errors import ServiceUnavailable
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.intake import IntakeNames
from creditledger.domain.money import dollars
from creditledger.entrypoints.api.app import create_app
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.prices import PriceInput, set_price_book
from creditledger.services.tokens import create_platform_token
from tests.conftest import PG_ADMIN_URL, make_settings
from tests.helpers import usage_violations

NATS_URL = os.environ.get("CREDITLEDGER_TEST_NATS_URL", "nats://127.0.0.1:4222")
REQUIRE_NATS = os.environ.get("CREDITLEDGER_REQUIRE_NATS") == "1"
EVENTS = int(os.environ.get("CREDITLEDGER_INTAKE_EVENTS", "50000"))
TEAMS = 100
ACK_WAIT = 5
DEADLINE = 150.0
KILLS = 3
MAX_BYTES = 64 * 1024**2
"""The room each test's stream takes: the server sets it aside when the stream is made."""
MODEL = "llama"
CLI = (sys.executable, "-m", "creditledger.entrypoints.cli")


# --- NATS --------------------------------------------------------------------------------


def _unreachable(url: str) -> str | None:
    try:
        NatsLoop(url, "creditledger tests", connect_timeout=2).close()
    except ServiceUnavailable as exc:
        return exc.message
    return None


def _missing(problem: str) -> None:
    if REQUIRE_NATS:
        pytest.fail(f"NATS is required but {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def nats_url() -> str:
    problem = _unreachable(NATS_URL)
    if problem is not None:
        _missing(f"does not answer: {problem}")
    return NATS_URL


@pytest.fixture
def names(nats_url: str) -> Iterator[IntakeNames]:
    """Subjects and streams of this test alone, deleted afterwards."""
    tag = secrets.token_hex(4)
    names = IntakeNames(f"t{tag}.usage", f"T{tag.upper()}", "creditledger")
    yield names
    _delete_streams(nats_url, names)


def _delete_streams(url: str, names: IntakeNames) -> None:
    async def delete() -> None:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        js = nc.jetstream()
        for stream in (names.stream, names.rejected_stream):
            with suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
        await nc.close()

    # A test that stopped its own server: its store goes with tmp_path.
    with suppress(nats.errors.Error, OSError):
        asyncio.run(delete())


def _jetstream(url: str, call: Callable[[Any], Any]) -> Any:
    """Run one JetStream management call (``call(js)`` is awaited) on a connection of its own."""

    async def run() -> Any:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            return await call(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())


def _consumer_settled(url: str, names: IntakeNames) -> bool:
    """Nothing waits in the stream and nothing delivered is unacknowledged."""
    info = _jetstream(url, lambda js: js.consumer_info(names.stream, names.consumer))
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


def _rejected_codes(url: str, names: IntakeNames) -> Counter[str]:
    async def read(js: Any) -> Counter[str]:
        state = (await js.stream_info(names.rejected_stream)).state
        codes: Counter[str] = Counter()
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            msg = await js.get_msg(names.rejected_stream, seq)
            codes[msg.headers["Creditledger-Reject-Code"]] += 1
        return codes

    result: Counter[str] = _jetstream(url, read)
    return result


# --- processes ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(database_url: str, url: str, names: IntakeNames) -> dict[str, str]:
    return os.environ | {
        "CREDITLEDGER_DATABASE_URL": database_url,
        "CREDITLEDGER_NATS_URL": url,
        "CREDITLEDGER_NATS_SUBJECT_PREFIX": names.prefix,
        "CREDITLEDGER_NATS_STREAM": names.stream,
        "CREDITLEDGER_NATS_CONSUMER": names.consumer,
        "CREDITLEDGER_NATS_ACK_WAIT_SECONDS": str(ACK_WAIT),
        "CREDITLEDGER_NATS_MAX_BYTES": str(MAX_BYTES),
        "CREDITLEDGER_RUN_JOBS_IN_PROCESS": "false",
    }


def _cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Worker:
    """A `creditledger consume` process with its metrics on a port of its own."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "creditledger.entrypoints.cli",
                    "consume",
                    "--metrics-port",
                    str(self.port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while self.metrics() is None:
            assert self.proc.poll() is None, f"consume exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "consume did not start"
            time.sleep(0.05)

    def metrics(self) -> dict[str, float] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        values: dict[str, float] = {}
        for line in text.splitlines():
            match = re.match(r"^(creditledger_intake_\w+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
            if match:
                key = match.group(1) + (match.group(2) or "")
                values[key] = float(match.group(3))
        return values

    def metric(self, key: str) -> float:
        return (self.metrics() or {}).get(key, 0.0)

    def freeze(self) -> None:
        """SIGSTOP: it holds what it has fetched and acknowledges nothing."""
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM, and the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@contextmanager
def _workers(env: dict[str, str], tmp_path: Path, count: int) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for n in range(count):
            started.append(Worker(env, tmp_path / f"consume-{n}.log"))
        yield started
    finally:
        for worker in started:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(timeout=10)


# --- data ----------------------------------------------------------------------------------


def _seed(ctx: Context, team_ids: list[str] | None = None) -> list[str]:
    """The price book and ``TEAMS`` teams (the given ids, or new ones) with promotional
    credit from $1 to $15: some run out and leave usage unpaid."""
    operator = Principal(TokenKind.OPERATOR, "tok_test_operator")
    set_price_book(ctx, operator, [PriceInput("serverless", MODEL, None, "requests", "0.01", 1)])
    ids = team_ids or []
    with ctx.uow() as uow:
        now = ctx.clock.now()
        for n in range(TEAMS):
            if team_ids is None:
                ids.append(uow.new_id("team"))
            uow.teams.add(ids[n], f"team {n}", now)
            credit = NewGrant(GrantKind.PROMOTIONAL, GrantSource.MANUAL, dollars(f"{1 + n % 15}"))
            issue_grant(uow, ctx, ids[n], credit, "Grant")
        uow.commit()
    return ids


def _event(team_id: str, event_id: str, when: datetime, **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": event_id,
        "team_id": team_id,
        "product": "serverless",
        "model": MODEL,
        "timestamp": when.isoformat(),
        "quantities": {"requests": 1 + len(event_id) % 3},
    }
    return raw | fields


@contextmanager
def _twin(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database on the same backend as ``database_url``."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'twin.db'}"
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    name = f"cl_twin_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(database_url).set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _balances(database_url: str) -> dict[str, tuple[int, int, int]]:
    """Each team's (credit left, unpaid, events charged)."""
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    t, g, u = tables.teams, tables.grants, tables.usage_events
    with engine.connect() as conn:
        left = dict(
            conn.execute(
                sa.select(g.c.team_id, sa.func.sum(g.c.remaining_nanos)).group_by(g.c.team_id)
            ).all()
        )
        charged: dict[str, int] = dict(
            conn.execute(sa.select(u.c.team_id, sa.func.count()).group_by(u.c.team_id)).all()
        )
        unpaid = dict(conn.execute(sa.select(t.c.id, t.c.unpaid_nanos)).all())
    engine.dispose()
    return {team: (int(left.get(team, 0)), unpaid[team], charged.get(team, 0)) for team in unpaid}


def _charged_count(database_url: str) -> int:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(tables.usage_events)).scalar()
    engine.dispose()
    return int(count or 0)


def _eventually(done: Callable[[], bool], seconds: float) -> bool:
    """Whether ``done`` came true within ``seconds``."""
    until = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= until:
            return False
        time.sleep(0.2)
    return True


def _wait_until(done: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    assert _eventually(done, deadline), f"timed out waiting until {what}"


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as exits:
        yield exits


@pytest.fixture
def ctx_nats(database_url: str) -> Iterator[Context]:
    """A context on the test's database with the system clock (the workers have it too)."""
    ctx = build_context(make_settings(database_url))
    yield ctx
    ctx.uow.dispose()


# --- the tests ---------------------------------------------------------------------------


@pytest.mark.slow
def test_events_published_while_two_workers_run_and_one_is_killed_are_each_charged_once(
    database_url: str,
    ctx_nats: Context,
    nats_url: str,
    names: IntakeNames,
    tmp_path: Path,
    stack: ExitStack,
) -> None:
    """EVENTS events with 5 % duplicates (half of them dropped by the stream, half sent
    without `Nats-Msg-Id` for the database to settle) and some bad ones, published while
    two workers consume; one is killed with kill -9 while it holds a batch, then started
    again. Every valid event is charged once (I4), the balances are those of the same
    events posted over HTTP to a fresh database, the bad ones are on the rejected stream
    with their codes, and `creditledger verify` is clean."""
    env = _env(database_url, nats_url, names)
    teams = _seed(ctx_nats)
    twin_url = stack.enter_context(_twin(database_url, tmp_path))
    twin = build_context(make_settings(twin_url))
    stack.callback(twin.uow.dispose)
    _seed(twin, teams)
    setup = _cli("streams", "setup", env=env)
    assert setup.returncode == 0, setup.stderr
    when = datetime.now(UTC) + timedelta(seconds=1)
    rng = random.Random(20261206)
    bad = {"unknown_model": 40, "invalid_quantity": 40, "invalid_event": 20, "subject_mismatch": 20}
    duplicates = EVENTS // 20
    valid = [
        _event(teams[n % TEAMS], f"ev-{n:06d}", when)
        for n in range(EVENTS - duplicates - sum(bad.values()))
    ]
    messages = [outgoing(names, e) for e in valid]
    http_events: list[dict[str, Any]] = list(valid)
    for n, original in enumerate(rng.sample(valid, duplicates)):
        again = outgoing(names, original)
        messages.append(again if n % 2 else Outgoing(again.subject, again.body, None))
        http_events.append(original)
    for n in range(bad["unknown_model"]):
        wrong = _event(teams[n % TEAMS], f"bad-model-{n}", when, model="nope")
        messages.append(outgoing(names, wrong))
        http_events.append(wrong)
    for n in range(bad["invalid_quantity"]):
        wrong = _event(teams[n % TEAMS], f"bad-qty-{n}", when, quantities={"requests": -1})
        messages.append(outgoing(names, wrong))
        http_events.append(wrong)
    for n in range(bad["invalid_event"]):
        messages.append(Outgoing(names.subject(teams[n % TEAMS]), b"{truncated", None))
    for n in range(bad["subject_mismatch"]):
        stray = outgoing(names, _event(teams[n % TEAMS], f"stray-{n}", when))
        messages.append(Outgoing(names.subject(teams[(n + 1) % TEAMS]), stray.body, None))
    rng.shuffle(messages)

    with _workers(env, tmp_path, 2) as workers:
        publisher = threading.Thread(target=publish_messages, args=(nats_url, messages))
        publisher.start()
        # kill -9 while the first worker holds a fetched batch it has not acknowledged.
        # The worker is frozen first (SIGSTOP) until the second one is given a message
        # again: that proves the frozen one held a batch (its acknowledgement wait ran
        # out). A batch can be acknowledged between the metric read and the freeze, so
        # this is tried again, up to KILLS times, while events are still to be charged.
        _wait_until(lambda: _charged_count(database_url) > len(valid) // 5, "a fifth is charged")
        redelivered = 0.0  # counted by the workers killed so far
        for kill in range(KILLS):
            _wait_until(
                lambda: (
                    workers[0].metric("creditledger_intake_in_flight_messages") > 0
                    or _charged_count(database_url) >= len(valid)
                ),
                "the first worker holds a batch",
            )
            if _charged_count(database_url) >= len(valid):
                break
            redelivered += workers[0].metric("creditledger_intake_redeliveries_total")
            before = workers[1].metric("creditledger_intake_redeliveries_total")
            workers[0].freeze()
            held = _eventually(
                lambda before=before: (  # type: ignore[misc]
                    workers[1].metric("creditledger_intake_redeliveries_total") > before
                ),
                ACK_WAIT + 5,
            )
            workers[0].kill()
            workers[0] = Worker(env, tmp_path / f"consume-0-again-{kill}.log")
            if held:
                break
        publisher.join(timeout=DEADLINE)
        assert not publisher.is_alive()
        _wait_until(
            lambda: (
                _charged_count(database_url) >= len(valid) and _consumer_settled(nats_url, names)
            ),
            "every event is charged and acknowledged",
        )
        redelivered += sum(w.metric("creditledger_intake_redeliveries_total") for w in workers)
        assert [w.stop() for w in workers] == [0, 0]

    assert redelivered > 0, "the killed worker's batch was not delivered again"
    charged = _balances(database_url)
    assert sum(c for _, _, c in charged.values()) == len(valid)
    assert usage_violations(database_url) == []
    assert _rejected_codes(nats_url, names) == Counter(bad)
    verify = _cli("verify", env=env)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("ledger ok")

    token = create_platform_token(twin, TokenKind.SERVICE, "gateway")
    with TestClient(create_app(twin)) as client:
        for start in range(0, len(http_events), 5000):
            answer = client.post(
                "/v1/usage-events",
                json={"events": http_events[start : start + 5000]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 200, answer.text
    assert _balances(twin_url) == charged


@pytest.mark.slow
def test_a_worker_started_after_the_events_were_published_catches_up(
    database_url: str, ctx_nats: Context, nats_url: str, names: IntakeNames, tmp_path: Path
) -> None:
    env = _env(database_url, nats_url, names)
    teams = _seed(ctx_nats)
    assert _cli("streams", "setup", env=env).returncode == 0
    when = datetime.now(UTC) + timedelta(seconds=1)
    events = [_event(teams[n % TEAMS], f"late-{n}", when) for n in range(3000)]
    file = tmp_path / "events.jsonl"
    file.write_bytes(b"\n".join(orjson.dumps(e) for e in events))

    published = _cli("publish", str(file), env=env)
    assert published.returncode == 0, published.stderr
    assert published.stdout.startswith("published 3000 event(s)")
    time.sleep(0.5)
    assert _charged_count(database_url) == 0

    with _workers(env, tmp_path, 1) as (worker,):
        _wait_until(
            lambda: _charged_count(database_url) == 3000 and _consumer_settled(nats_url, names),
            "the late worker caught up",
        )
        assert worker.metric('creditledger_intake_messages_total{outcome="accepted"}') == 3000
        assert worker.metric("creditledger_intake_lag_messages") == 0
        assert worker.stop() == 0
    assert usage_violations(database_url) == []


@pytest.mark.slow
def test_sigterm_lets_a_worker_finish_its_batch_and_acknowledge_what_it_committed(
    database_url: str, ctx_nats: Context, nats_url: str, names: IntakeNames, tmp_path: Path
) -> None:
    env = _env(database_url, nats_url, names)
    teams = _seed(ctx_nats)
    assert _cli("streams", "setup", env=env).returncode == 0
    when = datetime.now(UTC) + timedelta(seconds=1)
    events = [_event(teams[n % TEAMS], f"term-{n}", when) for n in range(20_000)]
    publish_messages(nats_url, [outgoing(names, e) for e in events])

    with _workers(env, tmp_path, 1) as (worker,):
        _wait_until(lambda: _charged_count(database_url) > 0, "the worker charges")
        started = time.monotonic()
        assert worker.stop() == 0
        assert time.monotonic() - started < 10
    info = _jetstream(nats_url, lambda js: js.consumer_info(names.stream, names.consumer))
    charged = _charged_count(database_url)
    assert info.num_ack_pending == 0  # what it fetched, it committed and acknowledged
    assert 0 < charged < 20_000
    assert info.num_pending == 20_000 - charged

    with _workers(env, tmp_path, 1) as (worker,):
        _wait_until(lambda: _charged_count(database_url) == 20_000, "the rest is charged")
        assert worker.metric("creditledger_intake_redeliveries_total") == 0
        assert worker.stop() == 0
    assert usage_violations(database_url) == []


def test_streams_setup_is_idempotent_and_says_what_durability_it_can_not_check(
    nats_url: str, names: IntakeNames, tmp_path: Path
) -> None:
    env = _env(f"sqlite:///{tmp_path / 'unused.db'}", nats_url, names)

    first = _cli("streams", "setup", env=env)
    again = _cli("streams", "setup", env=env)

    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert f"stream {names.stream} created" in first.stdout
    assert f"stream {names.rejected_stream} created" in first.stdout
    assert f"consumer {names.consumer} created" in first.stdout
    assert f"stream {names.stream} as configured" in again.stdout
    assert f"consumer {names.consumer} as configured" in again.stdout
    assert "warning:" in again.stderr and "sync" in again.stderr
    info = _jetstream(nats_url, lambda js: js.stream_info(names.stream))
    assert info.config.subjects == [names.events]
    assert info.config.storage == "file"
    assert info.config.retention == "workqueue"
    assert info.config.discard == "new"
    assert info.config.duplicate_window == 120


def test_without_a_nats_url_nothing_uses_nats(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITLEDGER_NATS")}
    env["CREDITLEDGER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"

    consume = _cli("consume", env=env)
    setup = _cli("streams", "setup", env=env)
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, creditledger.entrypoints.cli, creditledger.entrypoints.api.main;"
            "print('nats' in sys.modules)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    assert consume.returncode == 1 and "CREDITLEDGER_NATS_URL is not set" in consume.stderr
    assert setup.returncode == 1 and "CREDITLEDGER_NATS_URL is not set" in setup.stderr
    assert imported.stdout.strip() == "False"


# --- a NATS server of the test's own, restarted -------------------------------------------


def _nats_binary() -> str:
    binary = os.environ.get("CREDITLEDGER_TEST_NATS_SERVER") or shutil.which("nats-server")
    if binary is None and Path("/usr/sbin/nats-server").exists():
        binary = "/usr/sbin/nats-server"
    if binary is None:
        _missing("no nats-server binary to start")
    assert binary is not None
    return binary


def _syncs_every_write(binary: str) -> bool:
    """Whether the binary takes `sync_interval: always` (nats-server 2.10 and later)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"v(\d+)\.(\d+)", out.stdout + out.stderr)
    return match is not None and (int(match.group(1)), int(match.group(2))) >= (2, 10)


class OwnNats:
    """A nats-server on a free port with its store in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.binary = _nats_binary()
        self.port = _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.sync_always = _syncs_every_write(self.binary)
        sync = "  sync_interval: always\n" if self.sync_always else ""
        self.config = folder / "nats.conf"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f"jetstream {{\n  store_dir: {folder / 'store'}\n{sync}}}\n"
        )
        self.log = folder / "nats.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=out, stderr=subprocess.STDOUT
            )
        _wait_until(lambda: _unreachable(self.url) is None, "nats-server answers", 20)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[OwnNats]:
    server = OwnNats(tmp_path)
    yield server
    server.stop()


@pytest.mark.slow
def test_the_stream_and_the_consumer_survive_a_nats_restart_and_nothing_is_charged_twice(
    database_url: str, ctx_nats: Context, own_nats: OwnNats, tmp_path: Path
) -> None:
    """Published and acknowledged usage survives kill -9 of the server; so does the
    durable consumer. A worker running across the restart reconnects and goes on, and
    what it had charged but could not acknowledge comes again as duplicates."""
    names = IntakeNames("usage", "USAGE", "creditledger")
    env = _env(database_url, own_nats.url, names)
    teams = _seed(ctx_nats)
    limits = StreamLimits(ack_wait_seconds=ACK_WAIT, max_bytes=MAX_BYTES)
    setup_streams(own_nats.url, names, limits)
    when = datetime.now(UTC) + timedelta(seconds=1)
    before = [outgoing(names, _event(teams[n % TEAMS], f"r1-{n}", when)) for n in range(3000)]
    after = [outgoing(names, _event(teams[n % TEAMS], f"r2-{n}", when)) for n in range(3000)]
    publish_messages(own_nats.url, before)

    own_nats.kill()
    own_nats.start()
    info = _jetstream(own_nats.url, lambda js: js.stream_info(names.stream))
    assert info.state.messages == 3000
    consumer = _jetstream(own_nats.url, lambda js: js.consumer_info(names.stream, names.consumer))
    assert consumer.num_pending == 3000 and consumer.config.ack_wait == ACK_WAIT

    with _workers(env, tmp_path, 1) as (worker,):
        publisher = threading.Thread(target=publish_messages, args=(own_nats.url, after))
        publisher.start()
        _wait_until(lambda: _charged_count(database_url) > 1000, "the worker charges")
        own_nats.kill()  # mid-stream: batches in hand can not be acknowledged
        time.sleep(1.0)
        own_nats.start()
        publisher.join(timeout=DEADLINE)
        _wait_until(
            lambda: _charged_count(database_url) == 6000 and _consumer_settled(own_nats.url, names),
            "every event is charged after the restart",
        )
        assert worker.stop() == 0
    assert usage_violations(database_url) == []
    assert sum(c for _, _, c in _balances(database_url).values()) == 6000
