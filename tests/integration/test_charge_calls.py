"""A few charges' reads and writes as one call each on PostgreSQL (``adapters/db/
charge_reads.py``, ``charge_writes.py``, ``bulk.in_one_call``): the read call answers
what the reads one by one answer; the write call writes what the statements one by one
write, keeps the order of the writes it does not know, leaves with the next statement
or with the commit, stores nothing when it fails or the transaction rolls back, and
joins the keys of its updates through their index. Both functions are the text
migration 0015 made."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.db import bulk, charge_reads, charge_writes, repositories
from creditledger.adapters.db import usage as usage_storage
from creditledger.adapters.db.uow import SqlUnitOfWork
from creditledger.domain.errors import ServiceUnavailable
from creditledger.domain.money import dollars
from creditledger.domain.notices import Webhook
from creditledger.domain.recharge import AutoRecharge
from creditledger.services import usage
from creditledger.services.context import Context
from creditledger.services.tokens import authenticate
from tests.helpers import Platform, bearer, event, price


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


MADE_BY_MIGRATION = {
    charge_reads.FUNCTION: "786eac012cff29c1",
    charge_writes.FUNCTION: "d700b093ba729b1d",
}
"""The first 16 hex digits of the SHA-256 of each function's ``create_function()``
text as the latest migration that makes it (0015) made it."""


@pytest.mark.parametrize("module", [charge_reads, charge_writes], ids=lambda m: m.FUNCTION)
def test_the_functions_are_the_text_a_migration_made(module: Any) -> None:
    """A change of a function's SQL, or of the repositories' SQL it is built from,
    needs a migration that makes it anew (``CREATE OR REPLACE``) for the databases
    made before; then the digest here changes with it."""
    digest = hashlib.sha256(module.create_function().encode()).hexdigest()[:16]
    assert digest == MADE_BY_MIGRATION[module.FUNCTION], (
        f"{module.FUNCTION} changed: add a migration that makes it anew, then update "
        "MADE_BY_MIGRATION"
    )


def test_the_database_has_the_functions_the_code_makes(ctx: Context) -> None:
    _postgres_only(ctx)
    with ctx.uow(write=False) as uow:
        for module in (charge_reads, charge_writes):
            made = (
                _conn(uow)
                .exec_driver_sql(
                    "SELECT prosrc FROM pg_proc WHERE proname = %(f)s", {"f": module.FUNCTION}
                )
                .scalar_one()
            )
            assert made.strip() in module.create_function(), module.__name__


def test_the_read_call_answers_what_the_reads_one_by_one_answer(
    client: TestClient, ctx: Context, platform: Platform
) -> None:
    """Teams with custom pricing, a scoped grant, a webhook and auto-recharge; keys
    stored, new and of an unknown team."""
    _postgres_only(ctx)
    now = ctx.clock.now()
    teams = [platform.team().team_id for _ in range(3)]
    platform.promo(teams[0], "1.00", scope={"models": ["llama"]})
    platform.prepaid(teams[0], "10.00")
    platform.promo(teams[1], "2.00")
    priced = client.put(
        f"/v1/teams/{teams[0]}/pricing",
        json={"prices": [price("llama", "requests", "0.005")], "discount_percent": "10"},
        headers=bearer(platform.operator),
    )
    assert priced.status_code == 200, priced.text
    platform.usage(event(teams[0], "seen", now, requests=1))
    with ctx.uow() as uow:
        uow.notices.save_webhook(
            Webhook(teams[1], "https://example.test/h", None, "s" * 32, now), now
        )
        uow.recharges.save_settings(teams[2], AutoRecharge(True, dollars("5"), dollars("25")), now)
        uow.commit()
    keys = [
        (teams[0], "seen"),
        (teams[0], "new"),
        (teams[1], "seen"),
        (teams[2], "x"),
        ("team_missing", "e"),
    ]
    team_ids = sorted({team for team, _ in keys})
    assert charge_reads.fits(team_ids, keys)
    with ctx.uow() as uow:
        by_call = uow.read_for_usage(keys)
        assert by_call.locks == uow.teams.lock_for_usage(team_ids)
        assert by_call.fingerprints == uow.usage.fingerprints(keys)
        assert by_call.pricing == uow.pricing.for_teams(team_ids)
        assert by_call.grants == uow.grants.for_teams(team_ids)
    assert set(by_call.fingerprints) == {(teams[0], "seen")}
    assert by_call.locks.watched == {teams[1]} and by_call.locks.recharging == {teams[2]}
    assert by_call.pricing[teams[0]] and by_call.grants[teams[0]][0].scope is not None
    assert not charge_reads.fits(team_ids, [(teams[0], "a b")])
    assert not charge_reads.fits(team_ids, [(teams[0], f"e{n}") for n in range(bulk.LOOKUPS + 1)])


_WITH_COMMIT = f"{charge_writes.CALL}; COMMIT"


class _Statements:
    """The statements the driver was asked to run, by text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def clear(self) -> None:
        self.texts.clear()

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

    statements.clear()
    (first, *_) = usage.ingest_together(ctx, group(teams[0]))
    assert isinstance(first, usage.IngestResult) and first.accepted == 1
    written = [s for s in statements.texts if s.startswith(("INSERT", "UPDATE"))]
    assert written == []
    assert statements.texts[-1] == _WITH_COMMIT  # one message
    assert sum(charge_writes.CALL in s for s in statements.texts) == 1

    monkeypatch.setattr(bulk, "in_one_call", bulk.together)
    statements.clear()
    usage.ingest_together(ctx, group(teams[1]))
    assert not any(charge_writes.CALL in s for s in statements.texts)
    assert any(s.startswith("INSERT INTO postings") for s in statements.texts)

    by_call, one_by_one = _rows(ctx, teams[0]), _rows(ctx, teams[1])
    assert by_call == one_by_one
    assert by_call["team"][1] > 0  # the last event went past the credit
    assert [g[1] for g in by_call["grants"]] == [0, 0]


def test_a_write_it_does_not_know_is_sent_in_its_place(
    ctx: Context, platform: Platform, statements: _Statements
) -> None:
    """An update of a key already kept, or a slot before one already kept, sends what
    was kept and runs the write on its own: the order of the writes holds, and the call
    never joins a key twice (``UPDATE … FROM`` would apply one of its deltas)."""
    _postgres_only(ctx)
    team = platform.team().team_id
    grant = platform.promo(team, "1.00")
    teams = ("credit_nanos", "unpaid_nanos")
    with ctx.uow(write=False) as uow:
        before = uow.teams.revisions_with_price_version([team])[0][team]
    statements.clear()
    with ctx.uow() as uow:
        conn = _conn(uow)
        with bulk.in_one_call(conn):
            bulk.add_to_columns(conn, "teams", "id", teams, [(team, -5, 0)], "revision")
            assert statements.texts == []  # kept
            bulk.add_to_columns(conn, "teams", "id", teams, [(team, 0, 7)], "revision")
            assert statements.texts[0] == charge_writes.CALL  # the same key again
            assert statements.texts[1].startswith("UPDATE teams")
            bulk.add_to_columns(conn, "grants", "id", ("remaining_nanos",), [(grant, -5)])
            bulk.add_to_columns(conn, "teams", "id", teams, [(team, -1, 0)], "revision")
            assert statements.texts[2] == charge_writes.CALL  # an earlier slot than grants
            assert statements.texts[3].startswith("UPDATE teams")
            bulk.add_to_columns(
                conn, "grants", "id", ("remaining_nanos",), [(grant, -2), (grant, -3)]
            )  # a key twice in one write
            assert statements.texts[4].startswith("UPDATE grants")
        assert len(statements.texts) == 5  # nothing kept at the end
        credit, unpaid, revision = conn.exec_driver_sql(
            "SELECT credit_nanos, unpaid_nanos, revision FROM teams WHERE id = %(t)s", {"t": team}
        ).one()
        remaining = conn.exec_driver_sql(
            "SELECT remaining_nanos FROM grants WHERE id = %(g)s", {"g": grant}
        ).scalar_one()
    assert remaining == 1_000_000_000 - 5 - 2 - 3
    assert (credit, unpaid) == (1_000_000_000 - 5 - 1, 7)
    assert revision == before + 3


def test_a_failed_call_raises_at_the_commit_and_stores_nothing(
    ctx: Context, platform: Platform, statements: _Statements
) -> None:
    """The rows are kept past the block, until the commit; the call then fails as a
    whole (a posting for a missing grant), the ``COMMIT`` behind it does not run, and
    the transaction's earlier writes go with it."""
    _postgres_only(ctx)
    team = platform.team().team_id
    grant = platform.promo(team, "1.00")
    posting = ("txn_x", "platform:usage_revenue", 5, None, None, None)
    statements.clear()
    with ctx.uow() as uow:
        conn = _conn(uow)
        bulk.add_to_columns(conn, "teams", "id", ("unpaid_nanos",), [(team, 9)])
        with bulk.in_one_call(conn):
            _a_transaction_whose_posting_refers_to_a_missing_grant(conn, team, grant, posting)
        assert statements.texts[1:] == []  # kept past the block
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            uow.commit()
    assert statements.texts[1:] == [_WITH_COMMIT]  # one message
    assert _stored(ctx, team, grant) == (0, 1_000_000_000, 0)


def test_the_next_statement_takes_the_call_along(
    ctx: Context, platform: Platform, statements: _Statements
) -> None:
    """A statement after the block, of SQLAlchemy or of this module, sends the call
    first and sees its rows; the commit then has no call to send."""
    _postgres_only(ctx)
    team = platform.team().team_id
    grant = platform.promo(team, "1.00")
    remaining = sa.text("SELECT remaining_nanos FROM grants WHERE id = :g")
    statements.clear()
    with ctx.uow() as uow:
        conn = _conn(uow)
        with bulk.in_one_call(conn):
            bulk.add_to_columns(conn, "grants", "id", ("remaining_nanos",), [(grant, -5)])
        assert conn.execute(remaining, {"g": grant}).scalar_one() == 1_000_000_000 - 5
        assert statements.texts[0] == charge_writes.CALL
        with bulk.in_one_call(conn):
            bulk.add_to_columns(conn, "grants", "id", ("remaining_nanos",), [(grant, 5)])
        bulk.add_to_columns(conn, "teams", "id", ("unpaid_nanos",), [(team, 0)])
        assert statements.texts[2] == charge_writes.CALL
        assert statements.texts[3].startswith("UPDATE teams")
        uow.commit()
    assert statements.texts[4:] == []  # nothing left to send with the COMMIT
    assert _stored(ctx, team, grant) == (0, 1_000_000_000, 0)


def test_a_commit_of_the_connection_itself_sends_the_call(ctx: Context, platform: Platform) -> None:
    _postgres_only(ctx)
    team = platform.team().team_id
    grant = platform.promo(team, "1.00")
    for delta in (-5, 5):  # and back, for the ledger's invariants
        with ctx.uow() as uow:
            conn = _conn(uow)
            with bulk.in_one_call(conn):
                bulk.add_to_columns(conn, "grants", "id", ("remaining_nanos",), [(grant, delta)])
            conn.commit()  # the unit of work's rollback then finds nothing to end
        assert _stored(ctx, team, grant)[1] == 1_000_000_000 + min(delta, 0)


def test_a_rollback_drops_the_call(
    ctx: Context, platform: Platform, statements: _Statements
) -> None:
    """A transaction that ends without a commit sends nothing, and the connection goes
    back to the pool holding no call for the next transaction."""
    _postgres_only(ctx)
    team = platform.team().team_id
    grant = platform.promo(team, "1.00")
    statements.clear()
    with ctx.uow() as uow:
        conn = _conn(uow)
        with bulk.in_one_call(conn):
            bulk.add_to_columns(conn, "grants", "id", ("remaining_nanos",), [(grant, -5)])
    with ctx.uow() as uow:
        assert bulk._PENDING not in _conn(uow).info
        uow.commit()
    assert not any(charge_writes.CALL in s for s in statements.texts)
    assert _stored(ctx, team, grant) == (0, 1_000_000_000, 0)


def _stored(ctx: Context, team: str, grant: str) -> tuple[int, int, int]:
    """The test transaction's rows, the grant's remaining credit, the team's unpaid."""
    with ctx.uow(write=False) as uow:
        conn = _conn(uow)
        stored = conn.exec_driver_sql(
            "SELECT count(*) FROM ledger_transactions WHERE id = 'txn_x'"
        ).scalar_one()
        remaining = conn.exec_driver_sql(
            "SELECT remaining_nanos FROM grants WHERE id = %(g)s", {"g": grant}
        ).scalar_one()
        unpaid = conn.exec_driver_sql(
            "SELECT unpaid_nanos FROM teams WHERE id = %(t)s", {"t": team}
        ).scalar_one()
    return stored, remaining, unpaid


def test_the_updates_search_the_index_for_their_keys(ctx: Context, platform: Platform) -> None:
    """The plan the function keeps for the session (one for any rows, as its calls run),
    made on a small analysed table, searches the key's index for the given keys only:
    joined to the rows alone, it read the whole index for each row (decision 0036 saw
    a scan of the whole table)."""
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
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        for sql in updates:
            slot = next(s for s in charge_writes.SLOTS if sql.startswith(f"UPDATE {s.table} "))
            name = f"charge_update_{slot.table}"
            generic = sql.replace(
                f"json_array_elements({slot.parameter})", "json_array_elements($1)"
            )
            conn.exec_driver_sql(f"PREPARE {name}(json) AS {generic}")
            plan = [r[0].strip() for r in conn.exec_driver_sql(f"EXPLAIN EXECUTE {name}('[]')")]
            scans = [line for line in plan if "Scan" in line and f" on {slot.table} x" in line]
            assert len(scans) == 1 and "Seq Scan" not in scans[0], plan
            assert "Index Cond: ((id)::text = ANY ($0))" in plan, plan


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


def test_the_read_call_begins_the_transaction_in_the_same_message(
    ctx: Context, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg sends no ``BEGIN`` of its own: the call's message starts the transaction,
    whose lock on the team holds until the commit."""
    _postgres_only(ctx)
    team = platform.team().team_id
    commands: list[Any] = []
    original = psycopg.Connection._exec_command

    def spied(self: Any, command: Any, *args: Any, **kw: Any) -> Any:
        commands.append(command)
        return original(self, command, *args, **kw)

    monkeypatch.setattr(psycopg.Connection, "_exec_command", spied)
    with ctx.uow() as uow:
        reads = uow.read_for_usage([(team, "e1")])
        raw = _conn(uow).connection.driver_connection
        assert raw is not None
        assert raw.pgconn.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert commands == []
        with pytest.raises(ServiceUnavailable), ctx.uow() as other:  # the lock is held
            _conn(other).exec_driver_sql(
                "SELECT 1 FROM teams WHERE id = %(t)s FOR UPDATE NOWAIT", {"t": team}
            )
        uow.commit()
    assert reads.locks.teams == {team}


def test_a_first_statement_quotes_its_values_and_raises_its_error(ctx: Context) -> None:
    _postgres_only(ctx)
    tricky = "it's \\ 'quoted' ü %s"
    with ctx.uow() as uow:
        conn = _conn(uow)
        assert bulk.first_value(conn, "SELECT %s || %s", [tricky, "!"]) == tricky + "!"
        # Later in the transaction: an ordinary statement, the same answer.
        assert bulk.first_value(conn, "SELECT %s || %s", [tricky, "?"]) == tricky + "?"
        uow.commit()
    with ctx.uow() as uow, pytest.raises(psycopg.errors.DivisionByZero):
        bulk.first_value(_conn(uow), "SELECT 1 / %s", [0])
    with ctx.uow() as uow:  # the failed transaction was rolled back; the pool goes on
        assert bulk.first_value(_conn(uow), "SELECT %s", ["ok"]) == "ok"
        assert bulk.first_value(_conn(uow), "SELECT NULL", []) is None
        uow.commit()
