"""Where the sandbox provider keeps its own records: checkout sessions and payments.

An outside provider keeps these on its side; the sandbox keeps them in the
service's database (``sandbox_sessions``, ``sandbox_payments``), so a restart keeps
the pending checkouts, every worker process serves the same pages, and the
reconciliation job run from the command line sees the same payments.
:class:`MemorySandboxStore` keeps them in one process, for unit tests.

Every change that must happen once is one conditional statement: a session is
settled only from ``open`` (``UPDATE … WHERE status = 'open'``), and a session or an
off-session charge is made once per idempotency key (a UNIQUE key, inserted with
``ON CONFLICT DO NOTHING`` and read back).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.engine import WRITE_OPTION
from creditledger.adapters.db.repositories import insert_ignoring_conflicts
from creditledger.adapters.db.uow import is_transient
from creditledger.domain.errors import ServiceUnavailable
from creditledger.domain.payments import CheckoutState, PaymentPurpose

Intent = dict[str, Any]
"""A Stripe-shaped PaymentIntent."""


@dataclass(frozen=True, slots=True)
class SandboxSession:
    id: str
    idempotency_key: str
    reference: str
    """Our id of what it pays for (``purpose``)."""
    purpose: PaymentPurpose
    team_id: str
    amount: int
    """Nanos, whole cents."""
    customer_ref: str
    payment_id: str
    """The PaymentIntent this session pays with, once a card is tried."""
    state: CheckoutState
    created_at: datetime


class SandboxStore(Protocol):
    def add_session(self, session: SandboxSession) -> tuple[SandboxSession, bool]:
        """Keep ``session`` unless its idempotency key is known; the kept one, and
        whether it is new."""
        ...

    def session(self, session_id: str) -> SandboxSession | None: ...

    def settle(
        self, session_id: str, state: CheckoutState, intent: Intent | None, at: datetime
    ) -> bool:
        """Move an open session to ``state``, keeping its payment ``intent``, in one
        step; False (and nothing kept) when it was not open any more."""
        ...

    def add_charge(self, key: str, intent: Intent, at: datetime) -> tuple[Intent, bool]:
        """Keep an off-session charge unless ``key`` was used; the kept intent, and
        whether it is new."""
        ...

    def intent(self, payment_id: str) -> Intent | None: ...

    def intents_since(self, since: datetime) -> list[Intent]: ...


class MemorySandboxStore:
    """In one process's memory: for unit tests and throwaway use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, SandboxSession] = {}
        self._session_keys: dict[str, str] = {}
        self._intents: dict[str, tuple[Intent, datetime]] = {}
        self._charge_keys: dict[str, str] = {}

    def add_session(self, session: SandboxSession) -> tuple[SandboxSession, bool]:
        with self._lock:
            known = self._session_keys.get(session.idempotency_key)
            if known is not None:
                return self._sessions[known], False
            self._sessions[session.id] = session
            self._session_keys[session.idempotency_key] = session.id
            return session, True

    def session(self, session_id: str) -> SandboxSession | None:
        with self._lock:
            return self._sessions.get(session_id)

    def settle(
        self, session_id: str, state: CheckoutState, intent: Intent | None, at: datetime
    ) -> bool:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.state is not CheckoutState.OPEN:
                return False
            self._sessions[session_id] = replace(session, state=state)
            if intent is not None:
                self._intents[intent["id"]] = (dict(intent), at)
            return True

    def add_charge(self, key: str, intent: Intent, at: datetime) -> tuple[Intent, bool]:
        with self._lock:
            known = self._charge_keys.get(key)
            if known is not None:
                return dict(self._intents[known][0]), False
            self._charge_keys[key] = intent["id"]
            self._intents[intent["id"]] = (dict(intent), at)
            return intent, True

    def intent(self, payment_id: str) -> Intent | None:
        with self._lock:
            found = self._intents.get(payment_id)
            return None if found is None else dict(found[0])

    def intents_since(self, since: datetime) -> list[Intent]:
        with self._lock:
            return [dict(intent) for intent, at in self._intents.values() if at >= since]


def _session(row: Any) -> SandboxSession:
    return SandboxSession(
        id=row.id,
        idempotency_key=row.idempotency_key,
        reference=row.reference,
        purpose=PaymentPurpose(row.purpose),
        team_id=row.team_id,
        amount=row.amount_nanos,
        customer_ref=row.customer_ref,
        payment_id=row.payment_id,
        state=CheckoutState(row.status),
        created_at=row.created_at,
    )


class SqlSandboxStore:
    """In the service's database; each method is one short transaction of its own."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sa.Connection]:
        """One transaction, committed if the block ends normally. A lost connection or a
        busy database is ``ServiceUnavailable`` (retry), as in the unit of work."""
        try:
            with self.engine.connect() as plain:
                conn = plain.execution_options(**{WRITE_OPTION: True}) if write else plain
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            if is_transient(exc):
                raise ServiceUnavailable(
                    "The database is busy or unreachable; retry the request in a moment."
                ) from exc
            raise

    def add_session(self, session: SandboxSession) -> tuple[SandboxSession, bool]:
        s = t.sandbox_sessions
        with self._transaction(write=True) as conn:
            inserted = conn.execute(
                insert_ignoring_conflicts(conn, s)
                .values(
                    id=session.id,
                    idempotency_key=session.idempotency_key,
                    reference=session.reference,
                    purpose=session.purpose.value,
                    team_id=session.team_id,
                    amount_nanos=session.amount,
                    customer_ref=session.customer_ref,
                    payment_id=session.payment_id,
                    status=session.state.value,
                    created_at=session.created_at,
                    updated_at=session.created_at,
                )
                .returning(s.c.id)
            ).first()
            if inserted is not None:
                return session, True
            row = conn.execute(
                sa.select(s).where(s.c.idempotency_key == session.idempotency_key)
            ).one()
            return _session(row), False

    def session(self, session_id: str) -> SandboxSession | None:
        s = t.sandbox_sessions
        with self._transaction(write=False) as conn:
            row = conn.execute(sa.select(s).where(s.c.id == session_id)).first()
        return None if row is None else _session(row)

    def settle(
        self, session_id: str, state: CheckoutState, intent: Intent | None, at: datetime
    ) -> bool:
        s = t.sandbox_sessions
        with self._transaction(write=True) as conn:
            won = conn.execute(
                s.update()
                .where(s.c.id == session_id, s.c.status == CheckoutState.OPEN.value)
                .values(status=state.value, updated_at=at)
                .returning(s.c.id)
            ).first()
            if won is None:
                return False
            if intent is not None:
                conn.execute(
                    t.sandbox_payments.insert().values(
                        id=intent["id"], status=intent["status"], intent=intent, created_at=at
                    )
                )
            return True

    def add_charge(self, key: str, intent: Intent, at: datetime) -> tuple[Intent, bool]:
        p = t.sandbox_payments
        with self._transaction(write=True) as conn:
            inserted = conn.execute(
                insert_ignoring_conflicts(conn, p)
                .values(
                    id=intent["id"],
                    idempotency_key=key,
                    status=intent["status"],
                    intent=intent,
                    created_at=at,
                )
                .returning(p.c.id)
            ).first()
            if inserted is not None:
                return intent, True
            kept: Intent = conn.execute(
                sa.select(p.c.intent).where(p.c.idempotency_key == key)
            ).scalar_one()
            return dict(kept), False

    def intent(self, payment_id: str) -> Intent | None:
        p = t.sandbox_payments
        with self._transaction(write=False) as conn:
            found = conn.execute(sa.select(p.c.intent).where(p.c.id == payment_id)).scalar()
        return None if found is None else dict(found)

    def intents_since(self, since: datetime) -> list[Intent]:
        p = t.sandbox_payments
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                sa.select(p.c.intent).where(p.c.created_at >= since).order_by(p.c.created_at)
            ).all()
        return [dict(row.intent) for row in rows]
