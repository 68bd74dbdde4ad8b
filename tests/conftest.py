"""Shared fixtures: a migrated database on each backend, a context, an HTTP client.

Every test that takes ``ctx`` (directly or through ``client``) runs once on SQLite
and once on PostgreSQL, and the ledger invariants are checked after it.

PostgreSQL is found at ``CREDITLEDGER_TEST_POSTGRES_URL`` (default: the local
server). When it does not answer, its half of the tests is skipped, unless
``CREDITLEDGER_REQUIRE_POSTGRES=1`` (as in CI), which turns that into a failure.
"""

from __future__ import annotations

import http.server
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.db.migrate import upgrade
from creditledger.adapters.db.tables import metadata
from creditledger.adapters.payments.delivery import ManualOutbox
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.adapters.payments.sandbox_store import SqlSandboxStore
from creditledger.bootstrap import build_context
from creditledger.config import Settings
from creditledger.entrypoints.api.app import create_app
from creditledger.services.context import Context

PG_ADMIN_URL = os.environ.get(
    "CREDITLEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("CREDITLEDGER_REQUIRE_POSTGRES") == "1"
START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BACKENDS = ("sqlite", "postgres")
SANDBOX_SECRET = "whsec_test_sandbox"


def _pg_reachable() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL, poolclass=sa.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except sa.exc.OperationalError as exc:
        return str(exc).splitlines()[0]
    return None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for every test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.NullPool)
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session (one per xdist worker)."""
    problem = _pg_reachable()
    if problem is not None:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required but does not answer: {problem}")
        pytest.skip(f"PostgreSQL does not answer: {problem}")
    name = f"cl_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    # Test databases are thrown away: commits need not wait for the disk.
    url = (
        sa.make_url(PG_ADMIN_URL)
        .set(database=name)
        .update_query_dict({"options": "-c synchronous_commit=off"})
        .render_as_string(hide_password=False)
    )
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_pg(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "creditledger.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    _empty_pg(url)
    return url


@pytest.fixture(params=BACKENDS)
def scratch_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (not migrated) of its own, dropped afterwards: for tests that
    change the schema itself, such as migrating down."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    request.getfixturevalue("pg_database")  # skips or fails as the shared database does
    name = f"cl_scratch_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "password_time_cost": 1,
        "password_memory_kib": 8,
        # Every test client calls from the one address, and some tests sign up dozens of
        # users; the sign-up throttle's own tests use the default budget.
        "signups_per_address": 1000,
        # Pushed changes arrive a few milliseconds after their commit; tests that change
        # data and authorize at once read per decision. tests/integration/test_change_feed.py
        # covers the push.
        "push_changes": False,
        # Notices go to receivers on localhost; the SSRF guard has its own tests.
        "notify_allow_private_urls": True,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def sandbox(clock: FixedClock, database_url: str) -> Iterator[SandboxProvider]:
    """The sandbox payment provider, keeping its records in the test's database; its
    webhooks wait in a ManualOutbox for the test."""
    engine = create_engine(database_url)
    yield SandboxProvider(
        SANDBOX_SECRET,
        "http://testserver",
        ManualOutbox(SANDBOX_SECRET),
        clock.now,
        store=SqlSandboxStore(engine),
    )
    engine.dispose()


@pytest.fixture
def ctx(database_url: str, clock: FixedClock, sandbox: SandboxProvider) -> Iterator[Context]:
    context = build_context(make_settings(database_url), clock=clock, payments=sandbox)
    yield context
    violations = list(context.invariants.violations())
    context.uow.dispose()
    assert violations == [], "ledger invariants broken after the test"


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class Receiver:
    """An HTTP endpoint on localhost that answers from ``statuses`` (then 200)."""

    url: str = ""
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(state.delay)
            with lock:
                state.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None: ...

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
