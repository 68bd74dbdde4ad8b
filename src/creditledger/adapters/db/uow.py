"""The SQL unit of work: one connection, one transaction, the repositories on it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import psycopg
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from creditledger.adapters.db import bulk, charge_reads
from creditledger.adapters.db.audit import SqlAuditLog
from creditledger.adapters.db.engine import WRITE_OPTION
from creditledger.adapters.db.invoices import SqlInvoices
from creditledger.adapters.db.notices import SqlNotices
from creditledger.adapters.db.payments import SqlPayments, SqlRecharges
from creditledger.adapters.db.pricing import SqlPricing, pricing_by_team
from creditledger.adapters.db.promo_codes import SqlPromoCodes
from creditledger.adapters.db.repositories import (
    SqlGrants,
    SqlIdempotency,
    SqlLedger,
    SqlMembers,
    SqlTeams,
    SqlTokens,
    SqlUsers,
    SqlWebSessions,
    grants_by_team,
    usage_locks,
)
from creditledger.adapters.db.usage import SqlUsage, fingerprints_by_key
from creditledger.domain.accounts import TeamReads
from creditledger.domain.errors import ServiceUnavailable
from creditledger.domain.ids import RANDOM_BYTES, make_id
from creditledger.domain.usage import UsageReads


def new_id(prefix: str) -> str:
    return make_id(prefix, time.time_ns() // 1_000_000, os.urandom(RANDOM_BYTES))


class SqlUnitOfWork:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.users = SqlUsers(conn)
        self.teams = SqlTeams(conn)
        self.members = SqlMembers(conn)
        self.tokens = SqlTokens(conn)
        self.web_sessions = SqlWebSessions(conn)
        self.grants = SqlGrants(conn)
        self.ledger = SqlLedger(conn)
        self.idempotency = SqlIdempotency(conn)
        self.pricing = SqlPricing(conn)
        self.usage = SqlUsage(conn)
        self.payments = SqlPayments(conn)
        self.recharges = SqlRecharges(conn)
        self.promo_codes = SqlPromoCodes(conn)
        self.audit = SqlAuditLog(conn)
        self.invoices = SqlInvoices(conn)
        self.notices = SqlNotices(conn)
        self._committed = False

    def commit(self) -> None:
        bulk.commit(self.conn)
        self._committed = True

    def read_for_usage(self, keys: Sequence[tuple[str, str]]) -> UsageReads:
        """Lock the teams of ``keys`` (team id, event id) and read what charging their
        events needs: on PostgreSQL the transaction's start, the lock and the three
        reads travel in one round trip, the reads queued behind the lock."""
        team_ids = sorted({team_id for team_id, _ in keys})
        if bulk.is_postgres(self.conn) and charge_reads.fits(team_ids, keys):
            return self._read_for_usage_in_one_call(team_ids, keys)
        with bulk.together(self.conn):
            bulk.reuse_plans(self.conn, len(keys))
            locks = self.teams.lock_for_usage_later(team_ids)
            fingerprints = self.usage.fingerprints_later(keys)
            pricing = self.pricing.for_teams_later(team_ids)
            grants = self.grants.for_teams_later(team_ids)
        return UsageReads(locks(), fingerprints(), pricing(), grants())

    def _read_for_usage_in_one_call(
        self, team_ids: list[str], keys: Sequence[tuple[str, str]]
    ) -> UsageReads:
        """The same reads as one call (``charge_reads``), its start of the transaction in
        the same round trip."""
        text = bulk.first_value(
            self.conn, charge_reads.CALL, charge_reads.arguments(team_ids, keys)
        )
        assert text is not None  # the call answers an array, never null
        locks, fingerprints, pricing, grants = charge_reads.answer(text)
        return UsageReads(
            usage_locks(locks),
            fingerprints_by_key(fingerprints),
            pricing_by_team(pricing),
            grants_by_team(team_ids, grants),
        )

    def read_teams(self, team_ids: Sequence[str]) -> TeamReads:
        """The teams among ``team_ids`` with the newest price book version, their grants
        and their pricing: one round trip on PostgreSQL."""
        with bulk.together(self.conn):
            teams = self.teams.get_many_later(team_ids)
            grants = self.grants.for_teams_later(team_ids)
            pricing = self.pricing.for_teams_later(team_ids)
        found, version = teams()
        return TeamReads(found, version, grants(), pricing())

    def together(self, rows: int) -> AbstractContextManager[None]:
        if rows > bulk.VALUES_ROWS:
            return contextlib.nullcontext()  # COPY, which cannot travel in a pipeline
        return bulk.in_one_call(self.conn)

    def new_id(self, prefix: str) -> str:
        return new_id(prefix)


# serialization failure, deadlock detected, lock not available, admin shutdown, cannot connect
_RETRYABLE_PG = {"40001", "40P01", "55P03", "57P01", "57P03", "08000", "08001", "08003", "08006"}
_RETRYABLE_SQLITE = ("database is locked", "database table is locked", "disk i/o error")


def is_transient(exc: DBAPIError | psycopg.Error | sqlite3.Error) -> bool:
    """A failure worth a retry: lost connection, busy lock, serialization, deadlock.

    ``exc`` is SQLAlchemy's wrapper, or the driver's own error from a statement sent
    on the driver connection (``bulk``)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return _transient_driver_error(exc.orig)
    return _transient_driver_error(exc)


def _transient_driver_error(error: BaseException | None) -> bool:
    code = getattr(error, "sqlstate", None)
    if code is not None:
        return code in _RETRYABLE_PG
    if isinstance(error, psycopg.OperationalError):
        return True  # no SQLSTATE: the connection itself failed
    message = str(error).lower()
    return isinstance(error, sqlite3.OperationalError) and any(
        m in message for m in _RETRYABLE_SQLITE
    )


class SqlUnitOfWorkFactory:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def __call__(self, *, write: bool = True) -> Iterator[SqlUnitOfWork]:
        try:
            with self.engine.connect() as plain:
                if write:
                    conn = plain.execution_options(**{WRITE_OPTION: True})
                elif self.engine.dialect.name == "postgresql":
                    # Reads run each statement on its own (READ COMMITTED gives every
                    # statement its own snapshot anyway): no BEGIN and ROLLBACK round trips.
                    conn = plain.execution_options(isolation_level="AUTOCOMMIT")
                else:
                    conn = plain
                conn.begin()
                uow = SqlUnitOfWork(conn)
                try:
                    yield uow
                finally:
                    if not uow._committed:
                        conn.rollback()
        except (DBAPIError, psycopg.Error, sqlite3.Error) as exc:
            if is_transient(exc):
                raise ServiceUnavailable(
                    "The database is busy or unreachable; retry the request in a moment."
                ) from exc
            raise
