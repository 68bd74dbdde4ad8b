"""Secrets the service makes for itself, one per name and database (``service_secrets``).

The first process to need a secret makes it; every other process, now or after a
restart, reads the same one. Two processes starting together both try
``INSERT … ON CONFLICT DO NOTHING`` and then read the row back: whichever insert
committed first is what both see.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.engine import WRITE_OPTION
from creditledger.adapters.db.repositories import insert_ignoring_conflicts


def random_secret(prefix: str = "") -> str:
    """256 random bits, URL-safe text."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def ensure_secret(
    conn: sa.Connection, name: str, make: Callable[[], str], at: datetime | None = None
) -> str:
    """The secret called ``name``; made with ``make`` if nobody made it before.

    Runs on the caller's connection and transaction and does not commit: call it in a
    write transaction (on SQLite, ``BEGIN IMMEDIATE``) and commit it.
    """
    s = t.service_secrets
    conn.execute(
        insert_ignoring_conflicts(conn, s).values(
            name=name, value=make(), created_at=at or datetime.now(UTC)
        )
    )
    value: str = conn.execute(sa.select(s.c.value).where(s.c.name == name)).scalar_one()
    return value


class StoredSecret:
    """A secret read from the database (or made there) on first use, then kept.

    Reading it lazily lets a process be built before the database is migrated;
    ``creditledger serve`` and the worker only call it once they take requests.
    """

    def __init__(self, engine: sa.Engine, name: str, make: Callable[[], str]) -> None:
        self.engine = engine
        self.name = name
        self.make = make
        self._value: str | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._value is None:
                with self.engine.connect() as plain:
                    conn = plain.execution_options(**{WRITE_OPTION: True})
                    with conn.begin():
                        self._value = ensure_secret(conn, self.name, self.make)
            return self._value
