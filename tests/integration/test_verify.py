"""`creditledger verify` finds a planted violation and is clean otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables as t
from creditledger.adapters.db.engine import create_engine
from creditledger.bootstrap import build_context
from creditledger.entrypoints.cli import app
from creditledger.services import accounts
from creditledger.services.context import Context
from creditledger.services.verify import verify_ledger
from tests.conftest import START, make_settings
from tests.helpers import PASSWORD


@pytest.fixture
def unchecked_ctx(database_url: str) -> Iterator[Context]:
    """A context whose ledger the test breaks on purpose (no invariant check after)."""
    context = build_context(make_settings(database_url), clock=FixedClock(START))
    accounts.sign_up(context, "ada@example.com", PASSWORD, "Ada's team")
    yield context
    context.uow.dispose()


@pytest.fixture
def raw(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def run_verify(database_url: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify"], env={"CREDITLEDGER_DATABASE_URL": database_url})
    return result.exit_code, result.output


def test_verify_is_clean_on_a_sound_ledger(unchecked_ctx: Context, database_url: str) -> None:
    assert verify_ledger(unchecked_ctx) == []
    code, output = run_verify(database_url)
    assert code == 0
    assert output.strip().startswith("ledger ok")


def test_verify_finds_a_grant_balance_changed_behind_the_ledger(
    unchecked_ctx: Context, raw: sa.Engine, database_url: str
) -> None:
    with raw.begin() as conn:
        conn.execute(t.grants.update().values(remaining_nanos=t.grants.c.remaining_nanos - 1))
    problems = verify_ledger(unchecked_ctx)
    assert any(p.startswith("I2:") and "remaining" in p for p in problems)
    assert any(p.startswith("I3:") and "credit" in p for p in problems)

    code, output = run_verify(database_url)
    assert code == 1
    assert "I2:" in output
    assert "violation(s)" in output

    with raw.begin() as conn:
        conn.execute(t.grants.update().values(remaining_nanos=t.grants.c.remaining_nanos + 1))
    assert verify_ledger(unchecked_ctx) == []


def test_verify_finds_a_team_cache_out_of_step(unchecked_ctx: Context, raw: sa.Engine) -> None:
    with raw.begin() as conn:
        conn.execute(t.teams.update().values(unpaid_nanos=5))
    assert any(p.startswith("I3:") and "unpaid" in p for p in verify_ledger(unchecked_ctx))


def test_verify_finds_an_unbalanced_transaction(unchecked_ctx: Context, raw: sa.Engine) -> None:
    with raw.begin() as conn:
        tx_id = conn.execute(sa.select(t.ledger_transactions.c.id)).scalar_one()
        conn.execute(
            t.postings.insert().values(
                transaction_id=tx_id, account="platform:promotional_expense", amount_nanos=-1
            )
        )
    assert any(p.startswith("I1:") and tx_id in p for p in verify_ledger(unchecked_ctx))


def test_verify_finds_a_grant_without_its_issuing_entry(
    unchecked_ctx: Context, raw: sa.Engine
) -> None:
    with raw.begin() as conn:
        team_id = conn.execute(sa.select(t.teams.c.id)).scalar_one()
        conn.execute(
            t.grants.insert().values(
                id="grant_unfunded",
                team_id=team_id,
                kind="promotional",
                source="manual",
                amount_nanos=100,
                remaining_nanos=100,
                is_scoped=False,
                effective_at=START,
                created_at=START,
            )
        )
    problems = verify_ledger(unchecked_ctx)
    assert any(p.startswith("I2: grant grant_unfunded") for p in problems)
