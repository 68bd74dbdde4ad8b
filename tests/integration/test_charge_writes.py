"""A few charges' writes as one call on PostgreSQL (``adapters/db/charge_writes.py``,
``bulk.in_one_call``): the call writes what the statements one by one write, keeps the
order of the writes it does not know, stores nothing when it fails, and joins the keys
of its updates through their index."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.db import bulk, charge_writes, repositories
from creditledger.adapters.db import usage as usage_storage
from creditledger.adapters.db.uow import SqlUnitOfWork
from creditledger.services import usage
from creditledger.services.context import Context
from creditledger.services.tokens import authenticate
from tests.helpers import Platform, event, price


@pytest.fixture
def platform(client: TestClient, ctx: Context) -> Platform:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"), price("mixtral", "requests", "0.02"))
    return platform


def _conn(uow: object) -> sa.Connection:
    assert isinstance(uow, SqlUnitOfWork)
    return uow.conn


def _postgres_only(ctx: Context) -> None:
    with ctx.uow(write=False) as uow:
        if not bulk.is_postgres(_conn(uow)):
            pytest.skip("the call is PostgreSQL's; SQLite runs its statements in process")


def test_the_slots_are_the_columns_the_repositories_write() -> None:
    """The function's text is frozen in migration 0015: its columns are pinned here to
    those the statement path writes."""
    tables = {slot.table: slot for slot in charge_writes.SLOTS}
    assert tables["usage_events"].names == usage_storage._COLUMNS
    assert tables["ledger_transactions"].names == repositories._TX_COLUMNS
    assert tables["postings"].names == repositories._POSTING_COLUMNS
    assert (tables["teams"].names, tables["teams"].bump) == (
        ("credit_nanos", "unpaid_nanos"),
        "revision",
    )
    assert tables["grants"].names == ("remaining_nanos",)


class _Statements:
    """The statements the driver was asked to run, by text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def seen(self, query: Any) -> None:
        self.texts.append(query if isinstance(query, str) else repr(query))


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> _Statements:
    spy = _Statements()
    for name in ("execute", "executemany"):  # a connection's execute calls a cursor's
        original = getattr(psycopg.Cursor, name)

        def spied(self: Any, query: Any, *args: Any, _original: Any = original, **kw: Any) -> Any:
            spy.seen(query)
            return _original(self, query, *args, **kw)

        monkeypatch.setattr(psycopg.Cursor, name, spied)
    return spy


def _rows(ctx: Context, team_id: str) -> dict[str, Any]:
    """What a team's charges stored, without the ids and times that differ by team."""
    with ctx.uow(write=False) as uow:
        conn = _conn(uow)
        usage_rows = conn.exec_driver_sql(
            "SELECT event_id, charge_nanos, uncovered_nanos, transaction_id IS NULL, draws IS NULL,"
            " unit, quantity FROM usage_events WHERE team_id = %(t)s ORDER BY event_id",
            {"t": team_id},
        ).all()
        postings = conn.exec_driver_sql(
            "SELECT x.reference, x.description, p.account LIKE 'team:%%', p.amount_nanos,"
            " p.grant_id IS NULL, p.balance_after_nanos FROM postings p"
            " JOIN ledger_transactions x ON x.id = p.transaction_id"
            " WHERE x.team_id = %(t)s AND x.type = 'usage' ORDER BY p.seq",
            {"t": team_id},
        ).all()
        team = conn.exec_driver_sql(
            "SELECT credit_nanos, unpaid_nanos, revision FROM teams WHERE id = %(t)s",
            {"t": team_id},
        ).one()
        grants = conn.exec_driver_sql(
            "SELECT amount_nanos, remaining_nanos FROM grants WHERE team_id = %(t)s"
            " ORDER BY amount_nanos",
            {"t": team_id},
        ).all()
    return {"usage": usage_rows, "postings": postings, "team": team, "grants": grants}


def test_a_few_charges_are_one_call_that_writes_what_the_statements_write(
    ctx: Context,
    platform: Platform,
    statements: _Statements,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _postgres_only(ctx)
    gateway = authenticate(ctx, platform.service)
    now = ctx.clock.now()
    teams = []
    for _ in range(2):  # one charged by the call, one by the statements one by one
        team = platform.team().team_id
        platform.promo(team, "0.05")
        platform.promo(team, "0.03")
        teams.append(team)

    def group(team: str) -> list[tuple[Any, object]]:
        return [
            (gateway, [event(team, "a", now, requests=2)]),
            (gateway, [event(team, "b", now, model="mixtral", requests=2)]),
            (gateway, [event(team, "c", now, requests=4)]),  # past the credit: unpaid
        ]

    statements.texts.clear()
    (first, *_) = usage.ingest_together(ctx, group(teams[0]))
    assert isinstance(first, usage.IngestResult) and first.accepted == 1
    written = [s for s in statements.texts if s.startswith(("INSERT", "UPDATE"))]
    assert written == []
    assert statements.texts.count(charge_writes.CALL) == 1

    monkeypatch.setattr(bulk, "in_one_call", bulk.together)
    statements.texts.clear()
    usage.ingest_together(ctx, group(teams[1]))
    assert charge_writes.CALL not in statements.texts
    assert any(s.startswith("INSERT INTO postings") for s in statements.texts)

    by_call, one_by_one = _rows(ctx, teams[0]), _rows(ctx, teams[1])
    assert by_call == one_by_one
    assert by_call["team"][1] > 0  # the last event went past the credit
    assert [g[1] for g in by_call["grants"]] == [0, 0]


def test_a_write_it_does_not_know_is_sent_in_its_place(
    ctx: Context, platform: Platform, statements: _Statements
) -> None:
    """A slot before one already kept, or an update of a key already kept, sends what
    was kept and runs the write on its own: the order of the writes holds."""
    _postgres_only(ctx)
    team = platform.team().team_id
    grant = platform.promo(team, "1.00")
    statements.texts.clear()
    with ctx.uow() as uow:
        conn = _conn(uow)
        with bulk.in_one_call(conn):
            bulk.add_to_columns(conn, "grants", "id", ("remaining_nanos",), [(grant, -5)])
            bulk.add_to_columns(
                conn, "teams", "id", ("credit_nanos", "unpaid_nanos"), [(team, -5, 0)], "revision"
            )  # an earlier slot than the grants'
            bulk.add_to_columns(
                conn, "teams", "id", ("credit_nanos", "unpaid_nanos"), [(team, 0, 7)], "revision"
            )  # the same key again
            assert statements.texts.count(charge_writes.CALL) == 1
        assert statements.texts.count(charge_writes.CALL) == 2
        assert len(statements.texts) == 3
        credit, unpaid, revision = conn.exec_driver_sql(
            "SELECT credit_nanos, unpaid_nanos, revision FROM teams WHERE id = %(t)s", {"t": team}
        ).one()
        remaining = conn.exec_driver_sql(
            "SELECT remaining_nanos FROM grants WHERE id = %(g)s", {"g": grant}
        ).scalar_one()
    assert remaining == 1_000_000_000 - 5
    assert (credit, unpaid) == (1_000_000_000 - 5, 7)
    assert revision >= 2


def test_a_failed_call_raises_and_stores_nothing(ctx: Context, platform: Platform) -> None:
    _postgres_only(ctx)
    team = platform.team().team_id
    grant = platform.promo(team, "1.00")
    posting = ("txn_x", "platform:usage_revenue", 5, None, None, None)
    with ctx.uow() as uow:
        conn = _conn(uow)
        with pytest.raises(psycopg.errors.ForeignKeyViolation), bulk.in_one_call(conn):
            _a_transaction_whose_posting_refers_to_a_missing_grant(conn, team, grant, posting)
    with ctx.uow(write=False) as uow:
        conn = _conn(uow)
        stored = conn.exec_driver_sql(
            "SELECT count(*) FROM ledger_transactions WHERE id = 'txn_x'"
        ).scalar_one()
        remaining = conn.exec_driver_sql(
            "SELECT remaining_nanos FROM grants WHERE id = %(g)s", {"g": grant}
        ).scalar_one()
    assert (stored, remaining) == (0, 1_000_000_000)


def test_the_updates_join_their_keys_through_the_index(ctx: Context, platform: Platform) -> None:
    """Under the function's settings the update of a few keys searches the key's index,
    however small the planner believes the table (decision 0036 saw a scan)."""
    _postgres_only(ctx)
    for _ in range(3):
        platform.team()
    updates = [s for s in charge_writes.statements() if s.startswith("UPDATE")]
    assert len(updates) == 2
    with ctx.uow() as uow:
        conn = _conn(uow)
        conn.exec_driver_sql("ANALYZE teams")
        conn.exec_driver_sql("ANALYZE grants")
        for setting in ("enable_seqscan", "enable_hashjoin", "enable_mergejoin"):
            conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        for sql in updates:
            rows = next(
                s.parameter for s in charge_writes.SLOTS if sql.startswith(f"UPDATE {s.table}")
            )
            text = sql.replace(f"json_array_elements({rows})", "json_array_elements('[]'::json)")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {text}"))
            assert "Index Scan using pk_" in plan, plan
            assert "Seq Scan on" not in plan, plan


def _a_transaction_whose_posting_refers_to_a_missing_grant(
    conn: sa.Connection, team: str, grant: str, other_side: tuple[Any, ...]
) -> None:
    bulk.insert_rows(
        conn,
        "ledger_transactions",
        repositories._TX_COLUMNS,
        [("txn_x", team, "usage", 1, 1, "Usage", "ev")],
    )
    bulk.insert_rows(
        conn,
        "postings",
        repositories._POSTING_COLUMNS,
        [("txn_x", f"team:{team}:credit", -5, team, "grant_missing", 0), other_side],
    )
    bulk.add_to_columns(conn, "grants", "id", ("remaining_nanos",), [(grant, -5)])
