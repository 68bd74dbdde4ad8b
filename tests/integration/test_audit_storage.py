"""The audit log in the database: append-only, and written with the action it records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.engine import create_engine
from creditledger.domain.accounts import TokenKind
from creditledger.domain.audit import AuditEvent, AuditFilter
from creditledger.domain.money import dollars
from creditledger.services import accounts, billing, grants
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork
from creditledger.services.tokens import authenticate, create_platform_token
from tests.helpers import PASSWORD


class AuditDown(RuntimeError):
    """The audit log could not be written."""


class RefusingAuditLog:
    def record(self, event: AuditEvent) -> None:
        raise AuditDown(event.action)

    def page(self, flt: AuditFilter, before_seq: int | None, limit: int) -> list[AuditEvent]:
        return []


class AuditlessUnitOfWork:
    """The real unit of work, whose audit log refuses every write."""

    def __init__(self, ctx: Context) -> None:
        self.inner = ctx.uow

    def dispose(self) -> None:
        self.inner.dispose()

    def __call__(self, *, write: bool = True) -> AbstractContextManager[UnitOfWork, bool | None]:
        return self._open(write)

    @contextmanager
    def _open(self, write: bool) -> Iterator[UnitOfWork]:
        with self.inner(write=write) as uow:
            uow.audit = RefusingAuditLog()  # type: ignore[misc]
            yield uow


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def operator_reads_a_balance(ctx: Context) -> str:
    done = accounts.sign_up(ctx, "ada@example.com", PASSWORD, "Ada's team")
    operator = authenticate(ctx, create_platform_token(ctx, TokenKind.OPERATOR, "support"))
    billing.get_balance(ctx, operator, done.team.id)
    return done.team.id


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(lambda: t.audit_events.update().values(action="nothing"), id="update"),
        pytest.param(t.audit_events.delete, id="delete"),
    ],
)
def test_audit_events_can_not_be_changed_or_removed(
    ctx: Context, engine: sa.Engine, statement: Any
) -> None:
    operator_reads_a_balance(ctx)
    with engine.connect() as conn:
        conn.begin()
        with pytest.raises(sa.exc.DBAPIError) as caught:
            conn.execute(statement())
        conn.rollback()
    assert "append-only" in str(caught.value.orig)
    with engine.connect() as conn:
        actions = conn.execute(sa.select(t.audit_events.c.action)).scalars().all()
    assert sorted(actions) == ["balance.read", "token.create"]


def test_an_operator_action_whose_audit_event_fails_does_not_happen(ctx: Context) -> None:
    done = accounts.sign_up(ctx, "ada@example.com", PASSWORD, "Ada's team")
    operator = authenticate(ctx, create_platform_token(ctx, TokenKind.OPERATOR, "support"))
    credit = grants.OperatorGrant(amount="2.00", note="Thanks")
    with ctx.uow() as uow:
        grant = grants.grant_operator_credit(uow, ctx, operator, done.team.id, credit)
        uow.commit()
    broken = replace(ctx, uow=AuditlessUnitOfWork(ctx))
    with pytest.raises(AuditDown):
        grants.void_grant(broken, operator, done.team.id, grant.id)
    with ctx.uow(write=False) as uow:
        assert uow.grants.get(done.team.id, grant.id).voided_at is None  # type: ignore[union-attr]


def test_an_operator_read_whose_audit_event_fails_shows_nothing(ctx: Context) -> None:
    done = accounts.sign_up(ctx, "ada@example.com", PASSWORD, "Ada's team")
    operator = authenticate(ctx, create_platform_token(ctx, TokenKind.OPERATOR, "support"))
    broken = replace(ctx, uow=AuditlessUnitOfWork(ctx))
    with pytest.raises(AuditDown):
        billing.get_balance(broken, operator, done.team.id)
    admin = authenticate(ctx, done.token)
    assert billing.get_balance(broken, admin, done.team.id).promotional == dollars("3.00")
