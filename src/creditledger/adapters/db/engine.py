"""Engines for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts
with ``BEGIN IMMEDIATE`` so two writers queue for the lock at the start instead of
failing half-way. On PostgreSQL, writers lock the team row (``FOR UPDATE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

WRITE_OPTION = "creditledger_write"
SQLITE_BUSY_TIMEOUT_SECONDS = 30


def missing_sqlite_file(url: str) -> Path | None:
    """The absolute path of the SQLite file ``url`` names, when there is no such file.

    Connecting would create it, empty. None for other databases, in-memory SQLite and
    SQLite URIs (``file:…``), and when the file exists."""
    parsed = sa.make_url(url)
    database = parsed.database
    if (
        parsed.get_backend_name() != "sqlite"
        or not database
        or database == ":memory:"
        or database.startswith("file:")
        or parsed.query.get("uri")
    ):
        return None
    path = Path(database).absolute()
    return None if path.exists() else path


def create_engine(url: str, *, pool_size: int = 10) -> sa.Engine:
    """No pre-ping on checkout (a round trip on every request): a connection found dead
    surfaces as a retryable ``service_unavailable`` and the pool replaces it."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=20, pool_recycle=1800, future=True
    )


def _sqlite_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        poolclass=sa.pool.QueuePool,
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, open transactions.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA wal_autocheckpoint=10000")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
