"""Faults (docs/quality.md): a database connection dropped in the middle of a request, sixteen
SQLite writers at once, and the expiry job racing usage. None of them reaches a client as
a 500 or a "database is locked", and none leaves the books wrong."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables
from creditledger.bootstrap import build_context
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.ledger import EntryType
from creditledger.services.context import Context
from creditledger.services.expiry import expire_credits
from creditledger.services.usage import ingest_usage
from tests.conftest import make_settings
from tests.helpers import (
    Platform,
    at,
    at_once,
    bearer,
    error_code,
    event,
    nanos,
    operator_grant,
    price,
    usage_violations,
)

GATEWAY = Principal(TokenKind.SERVICE, "tok_gateway")
MIDNIGHT = at("2026-11-25T00:00")


# --- a connection dropped mid-request (PostgreSQL) --------------------------------------


class _Blocker:
    """Holds a team's row lock from another connection so a request waits on it; then
    terminates the backend serving that request, and lets go."""

    def __init__(self, database_url: str, team_id: str) -> None:
        self.engine = sa.create_engine(database_url, poolclass=sa.NullPool)
        self.database_url = database_url
        self.team_id = team_id
        self.conn = self.engine.connect()
        self.tx = self.conn.begin()
        self.conn.execute(
            sa.select(tables.teams.c.id).where(tables.teams.c.id == team_id).with_for_update()
        )
        self.terminated: list[int] = []

    def terminate_the_waiting_request(self) -> None:
        with self.engine.connect() as admin:
            deadline = time.monotonic() + 10
            while not self.terminated:
                assert time.monotonic() < deadline, "no request came to wait on the lock"
                pids = admin.execute(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )
                ).scalars()
                for pid in pids:
                    admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    self.terminated.append(pid)
                time.sleep(0.01)
        self.tx.rollback()
        self.conn.close()
        self.engine.dispose()


def _with_the_connection_dropped(
    database_url: str, team_id: str, request: Callable[[], Any]
) -> tuple[Any, list[int]]:
    blocker = _Blocker(database_url, team_id)
    answer: list[Any] = []
    worker = threading.Thread(target=lambda: answer.append(request()))
    worker.start()
    blocker.terminate_the_waiting_request()
    worker.join(timeout=30)
    assert answer, "the request did not finish"
    return answer[0], blocker.terminated


def _postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("pg_terminate_backend is PostgreSQL's")


def test_a_connection_dropped_mid_usage_batch_is_retried_or_answers_503_and_charges_once(
    client: TestClient, ctx: Context, database_url: str
) -> None:
    _postgres_only(database_url)
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    tid = platform.team().team_id
    platform.promo(tid, "1.00")
    batch = [event(tid, f"e{i}", ctx.clock.now(), requests=1) for i in range(50)]

    def post() -> Any:
        return client.post(
            "/v1/usage-events", json={"events": batch}, headers=bearer(platform.service)
        )

    response, terminated = _with_the_connection_dropped(database_url, tid, post)

    assert terminated
    assert response.status_code in (200, 503), response.text
    if response.status_code == 503:
        assert error_code(response) == "service_unavailable"
        assert "Retry-After" in response.headers or response.json()["error"]["message"]
        assert usage_violations(database_url) == []
    again = platform.usage(*batch)
    assert again["accepted"] + again["duplicates"] == 50
    assert again["accepted"] == (50 if response.status_code == 503 else 0)
    assert sum(platform.remaining(tid).values()) == nanos("0.50")
    assert usage_violations(database_url) == []


def test_a_connection_dropped_mid_grant_is_retried_or_answers_503_and_grants_once(
    client: TestClient, ctx: Context, database_url: str
) -> None:
    _postgres_only(database_url)
    platform = Platform.on(client, ctx)
    tid = platform.team().team_id

    def grant() -> Any:
        return operator_grant(client, platform.operator, tid, "3.00", key="dropped-1")

    response, terminated = _with_the_connection_dropped(database_url, tid, grant)

    assert terminated
    assert response.status_code in (201, 503), response.text
    again = operator_grant(client, platform.operator, tid, "3.00", key="dropped-1")
    assert again.status_code in (200, 201), again.text
    assert list(platform.remaining(tid).values()) == [nanos("3.00")]


# --- sixteen SQLite writers at once ---------------------------------------------------------


def test_sixteen_writers_at_once_never_show_a_client_database_is_locked(
    client: TestClient, ctx: Context, database_url: str
) -> None:
    """Eight server threads posting usage and eight CLI processes creating promo codes,
    all against one database at once. SQLite's writers queue on one file lock, so this is
    its test; PostgreSQL's row locks are covered by the race tests."""
    if not database_url.startswith("sqlite"):
        pytest.skip("a SQLite property: one writer at a time on the file")
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    teams = [platform.team().team_id for _ in range(4)]
    for tid in teams:
        platform.promo(tid, "5.00")
    env = os.environ | {"CREDITLEDGER_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "creditledger.entrypoints.cli", "promo", "create"]

    def post(i: int) -> Any:
        def run() -> Any:
            events = [
                event(teams[i % 4], f"w{i}-{n}", ctx.clock.now(), requests=1) for n in range(40)
            ]
            return client.post(
                "/v1/usage-events", json={"events": events}, headers=bearer(platform.service)
            )

        return run

    def cli(i: int) -> Any:
        def run() -> Any:
            return subprocess.run(
                [*command, "--amount", "1.00", "--code", f"BUSY{i:02d}"],
                check=False,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        return run

    results = at_once([post(i) for i in range(8)] + [cli(i) for i in range(8)])

    responses, processes = results[:8], results[8:]
    for response in responses:
        assert "locked" not in response.text
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 40
    for process in processes:
        assert "locked" not in process.stdout + process.stderr
        assert process.returncode == 0, process.stderr
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        made = conn.execute(
            sa.select(sa.func.count()).where(tables.promo_codes.c.code.like("BUSY%"))
        ).scalar_one()
    engine.dispose()
    assert made == 8
    assert usage_violations(database_url) == []


# --- the expiry job racing usage --------------------------------------------------------


def test_the_expiry_job_racing_usage_keeps_consumed_plus_expired_equal_to_granted(
    client: TestClient, ctx: Context, clock: FixedClock, database_url: str
) -> None:
    """The usage process's clock is inside the late-arrival window (so 23:59 usage may
    still draw credit that expired at midnight) while the expiry job's clock has just
    passed it: whichever commits first, no nano is both spent and written off."""
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    teams = [platform.team().team_id for _ in range(6)]
    expiring = {tid: platform.promo(tid, "1.00", expires_at=MIDNIGHT) for tid in teams}
    for tid in teams:
        platform.promo(tid, "1.00")
    clock.at = MIDNIGHT + timedelta(minutes=59, seconds=59)
    job = build_context(
        make_settings(database_url), clock=FixedClock(MIDNIGHT + timedelta(hours=1))
    )
    late = MIDNIGHT - timedelta(minutes=1)

    def usage(tid: str, part: int) -> Callable[[], Any]:
        events = [event(tid, f"{tid}-{part}-{n}", late, requests=3) for n in range(10)]
        return lambda: ingest_usage(ctx, GATEWAY, events)

    try:
        jobs = [usage(tid, part) for tid in teams for part in range(2)]
        at_once([*jobs, lambda: expire_credits(job), lambda: expire_credits(job)])
        expire_credits(job)
    finally:
        job.uow.dispose()

    g, p, tx, e = tables.grants, tables.postings, tables.ledger_transactions, tables.usage_events
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        for tid in teams:
            grant_id = expiring[tid]
            by_type = dict(
                conn.execute(
                    sa.select(tx.c.type, sa.func.sum(p.c.amount_nanos))
                    .join(tx, tx.c.id == p.c.transaction_id)
                    .where(p.c.grant_id == grant_id)
                    .group_by(tx.c.type)
                ).all()
            )
            granted = by_type.pop(EntryType.GRANT.value)
            expired = -by_type.pop(EntryType.EXPIRY.value, 0)
            assert set(by_type) <= {EntryType.USAGE.value, EntryType.ADJUSTMENT.value}
            consumed = -sum(by_type.values())
            assert granted == nanos("1.00")
            assert consumed + expired == granted, (tid, consumed, expired)
            remaining = conn.execute(
                sa.select(g.c.remaining_nanos).where(g.c.id == grant_id)
            ).scalar_one()
            assert remaining == 0
            charged, uncovered = conn.execute(
                sa.select(sa.func.sum(e.c.charge_nanos), sa.func.sum(e.c.uncovered_nanos)).where(
                    e.c.team_id == tid
                )
            ).one()
            assert (charged, uncovered) == (nanos("0.60"), 0)
    engine.dispose()
    assert usage_violations(database_url) == []
