"""Errors raised by the driver itself (statements sent on the driver connection, and the
pipelined ingestion reads and writes) are judged like SQLAlchemy's: a transient one is
``service_unavailable``, worth a retry; any other goes on unchanged."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
import sqlalchemy as sa

from creditledger.adapters.db import tables
from creditledger.domain.errors import ServiceUnavailable
from creditledger.services.context import Context
from tests.helpers import at

NOW = at("2026-11-25T00:00")


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
        psycopg.OperationalError("the connection is lost"),
        sqlite3.OperationalError("database is locked"),
    ],
)
def test_a_transient_driver_error_is_service_unavailable(ctx: Context, error: Exception) -> None:
    with pytest.raises(ServiceUnavailable), ctx.uow():
        raise error


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.UniqueViolation("duplicate key value"),
        psycopg.errors.SyntaxError("syntax error"),
        sqlite3.IntegrityError("UNIQUE constraint failed"),
        sqlite3.OperationalError("no such table: teams"),
    ],
)
def test_any_other_driver_error_goes_on_unchanged(ctx: Context, error: Exception) -> None:
    with pytest.raises(type(error)), ctx.uow():
        raise error


def _read_giving_up_after_20_ms(ctx: Context, team_id: str) -> None:
    with ctx.uow() as uow:
        uow.conn.exec_driver_sql("SET LOCAL lock_timeout = '20ms'")  # type: ignore[attr-defined]
        uow.read_for_usage([(team_id, "evt_1")])


def test_a_lock_timeout_inside_the_pipelined_reads_is_service_unavailable(
    ctx: Context, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("lock_timeout is PostgreSQL's")
    with ctx.uow() as uow:
        uow.teams.add("team_locked", "Locked", NOW)
        uow.commit()
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as blocker, blocker.begin():
            blocker.execute(
                sa.select(tables.teams.c.id)
                .where(tables.teams.c.id == "team_locked")
                .with_for_update()
            )
            with pytest.raises(ServiceUnavailable):
                _read_giving_up_after_20_ms(ctx, "team_locked")
    finally:
        engine.dispose()
    with ctx.uow() as uow:
        locks = uow.read_for_usage([("team_locked", "evt_1")]).locks
        assert set(locks.teams) == {"team_locked"}
