"""The ledger's and usage's references hold on both databases: SQLite checks them as
foreign keys, PostgreSQL once per statement by trigger (migration 0013). A row that
refers to a missing one is refused with its whole statement, and a row that others
refer to can not be deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from creditledger.adapters.db import tables
from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.db.invariants import SqlInvariants

AT = datetime(2026, 12, 1, tzinfo=UTC)
TEAM = "team_0000000000000000000000000000001"
GRANT = "grant_000000000000000000000000000001"
TX = "txn_00000000000000000000000000000001"
OTHER_TEAM = "team_0000000000000000000000000000002"


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(tables.teams.insert().values(id=TEAM, name="t", created_at=AT))
        conn.execute(
            tables.grants.insert().values(
                id=GRANT,
                team_id=TEAM,
                kind="prepaid",
                source="purchase",
                amount_nanos=10,
                remaining_nanos=10,
                is_scoped=False,
                effective_at=AT,
                created_at=AT,
            )
        )
        conn.execute(tables.ledger_transactions.insert().values(_tx(TX)))
        conn.execute(
            tables.postings.insert().values(
                transaction_id=TX, account=f"grant:{GRANT}", amount_nanos=0, grant_id=GRANT
            )
        )
        conn.execute(tables.usage_events.insert().values(_usage(TEAM, "e0")))
    yield engine
    engine.dispose()


def _tx(tx_id: str, team_id: str = TEAM) -> dict[str, Any]:
    return {
        "id": tx_id,
        "team_id": team_id,
        "type": "usage",
        "occurred_at": AT,
        "created_at": AT,
        "description": "d",
    }


def _usage(team_id: str, event_id: str) -> dict[str, Any]:
    return {
        "team_id": team_id,
        "event_id": event_id,
        "fingerprint": "f",
        "product": "serverless",
        "model": "m",
        "occurred_at": AT,
        "charge_nanos": 0,
        "uncovered_nanos": 0,
        "received_at": AT,
    }


def _posting(tx_id: str = TX, grant_id: str | None = None) -> dict[str, Any]:
    return {"transaction_id": tx_id, "account": "a", "amount_nanos": 0, "grant_id": grant_id}


MISSING = "x_missing"
CASES = {
    "usage to a missing team": (
        tables.usage_events,
        [_usage(TEAM, "e1"), _usage(TEAM, "e2"), _usage(MISSING, "e3")],
    ),
    "a transaction to a missing team": (
        tables.ledger_transactions,
        [_tx("txn_a"), _tx("txn_b"), _tx("txn_c", team_id=MISSING)],
    ),
    "a posting to a missing transaction": (
        tables.postings,
        [_posting(), _posting(), _posting(tx_id=MISSING)],
    ),
    "a posting to a missing grant": (
        tables.postings,
        [_posting(grant_id=GRANT), _posting(), _posting(grant_id=MISSING)],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_statement_with_a_row_that_refers_to_a_missing_one_is_refused_whole(
    engine: sa.Engine, case: str
) -> None:
    table, rows = CASES[case]
    before = _count(engine, table)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(table.insert(), rows)
    assert _count(engine, table) == before
    with engine.begin() as conn:  # the good rows alone go in
        conn.execute(table.insert(), rows[:-1])
    assert _count(engine, table) == before + len(rows) - 1


@pytest.mark.parametrize("referred_by", ["usage", "a transaction", "a posting"])
def test_a_row_that_others_refer_to_can_not_be_deleted(engine: sa.Engine, referred_by: str) -> None:
    table: sa.Table = tables.teams
    row_id = OTHER_TEAM
    with engine.begin() as conn:
        conn.execute(tables.teams.insert().values(id=OTHER_TEAM, name="o", created_at=AT))
        if referred_by == "usage":
            conn.execute(tables.usage_events.insert().values(_usage(OTHER_TEAM, "e9")))
        elif referred_by == "a transaction":
            conn.execute(tables.ledger_transactions.insert().values(_tx("txn_o", OTHER_TEAM)))
        else:
            table, row_id = tables.grants, GRANT
    before = _count(engine, table)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(table.delete().where(table.c.id == row_id))
    assert _count(engine, table) == before


def test_postgres_checks_these_keys_per_statement_and_sqlite_as_keys(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        declared = {
            (table, column, fk["referred_table"])
            for table in ("usage_events", "ledger_transactions", "postings")
            for fk in inspector.get_foreign_keys(table)
            for column in fk["constrained_columns"]
        }
        if engine.dialect.name == "sqlite":
            assert declared >= tables.PER_STATEMENT_KEYS
            return
        assert declared.isdisjoint(tables.PER_STATEMENT_KEYS)
        triggers = set(
            conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars()
        )
    assert {"usage_events_keys", "ledger_transactions_keys", "postings_keys"} <= triggers
    assert {"teams_referred", "grants_referred", "ledger_transactions_referred"} <= triggers
    assert {"teams_renamed", "grants_renamed", "usage_events_team"} <= triggers


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_verify_finds_a_row_that_refers_to_a_missing_one(engine: sa.Engine) -> None:
    """Written with the checks off (a restore, a hand edit): `verify` still finds it."""
    assert list(_reference_violations(engine)) == []
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        if engine.dialect.name == "postgresql":
            driver.execute("SET session_replication_role = replica")
        else:
            driver.execute("PRAGMA foreign_keys = OFF")
        driver.execute(
            "INSERT INTO postings (transaction_id, account, amount_nanos) "
            f"VALUES ('{MISSING}', 'a', 0)"
        )
        driver.commit()
    finally:
        raw.invalidate()
    assert list(_reference_violations(engine)) == [
        "I9: 1 postings rows refer to a missing ledger_transactions row (transaction_id)"
    ]


def _reference_violations(engine: sa.Engine) -> list[str]:
    return [v for v in SqlInvariants(engine).violations() if "refer to a missing" in v]
