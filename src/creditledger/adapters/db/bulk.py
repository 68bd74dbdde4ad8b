"""Set-based writes and lookups on the driver connection, for the ingestion hot path.

PostgreSQL gets COPY and array parameters (one round trip however many rows);
SQLite gets prepared ``executemany``. Both run inside the unit of work's
transaction. Values are passed as the database stores them (micros, nanos).

Inside :func:`together`, PostgreSQL statements travel in one pipeline: they are sent
at once and their results come back together, one round trip for all of them. The
reads answer a function that gives their rows; called after the ``together`` block,
it waits for nothing more. Inside :func:`in_one_call`, the writes that
``charge_writes`` knows are gathered and sent as one statement: with the next statement
on the connection, or with the ``COMMIT`` in one round trip (:func:`commit`).

psycopg's pipeline also sends several statements in one round trip, but it writes each
to the socket and polls the socket between them: two pipelines cost a transaction about
0.3 ms of CPU more than two messages here. So the statements that begin a transaction
(:func:`first_value`) and end it (:func:`commit`) go as one message of the simple query
protocol each, their values quoted by psycopg.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from psycopg import generators, pq

from creditledger.adapters.db import charge_writes

_SQLITE_CHUNK = 500


def _array(values: Sequence[Any], sql_type: str) -> tuple[str, Any]:
    """An array parameter as SQL and its value. psycopg dumps a list element by element
    in Python (1.4 ms for 1,000 ids); when no element holds the separator, the array
    travels as one string that PostgreSQL splits (0.2 ms). Ids never hold a space."""
    if sql_type == "bigint":
        return "string_to_array(%s, ' ')::bigint[]", " ".join(map(str, values))
    if all(type(v) is str for v in values) and "" not in values:
        joined = " ".join(values)
        if joined.count(" ") == len(values) - 1:
            return "string_to_array(%s, ' ')", joined
    return f"%s::{sql_type}[]", list(values)


VALUES_ROWS = 64
"""Up to this many rows go to PostgreSQL as one ``INSERT … VALUES``: one round trip,
where COPY takes two and more setup (a group of a few single-event POSTs writes three
tables of a few rows each); more rows go by COPY."""


@functools.lru_cache(maxsize=256)
def _values_insert(table: str, columns: tuple[str, ...], count: int) -> str:
    """With PostgreSQL's own ``$n`` placeholders, for a raw cursor: psycopg parses a
    query of more than 50 parameters again on every call, and this one has many."""
    width = len(columns)
    rows = (
        "(" + ", ".join(f"${row * width + col + 1}" for col in range(width)) + ")"
        for row in range(count)
    )
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join(rows)


def is_postgres(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def driver(conn: sa.Connection) -> Any:
    """The driver connection, once the write call waiting on ``conn`` is sent: every
    statement of this module goes after it."""
    send_pending(conn)
    return _raw(conn)


def _raw(conn: sa.Connection) -> Any:
    return conn.connection.driver_connection


Rows = list[tuple[Any, ...]]


@contextlib.contextmanager
def together(conn: sa.Connection) -> Iterator[None]:
    """The driver statements inside go to PostgreSQL in one pipeline: one round trip
    for all of them, at the end of the block, where their errors surface too. Only
    this module's functions may run inside: SQLAlchemy statements need their results
    at once. On SQLite, statements run one by one, as anywhere."""
    if not is_postgres(conn):
        yield
        return
    with driver(conn).pipeline():
        yield


def _in_pipeline(conn: sa.Connection) -> bool:
    return bool(driver(conn).pgconn.pipeline_status != pq.PipelineStatus.OFF)


def _later(cur: Any) -> Callable[[], Rows]:
    """The rows of ``cur``'s statement, when asked for; the cursor closes then."""

    def rows() -> Rows:
        with cur:
            return list(cur.fetchall())

    return rows


def _ready(rows: Rows) -> Callable[[], Rows]:
    return lambda: rows


_GATHERED = "creditledger.gathered"
"""Where :func:`in_one_call` keeps its rows, in the connection's ``info``."""

_PENDING = "creditledger.pending"
"""Where the write call of an :func:`in_one_call` block that has ended waits, in the
connection's ``info``, for the next statement or the commit to take it along."""


def send_pending(conn: sa.Connection) -> None:
    """Send the write call waiting on ``conn``, if any, before what comes next."""
    params = conn.info.pop(_PENDING, None)
    if params is not None:
        _raw(conn).execute(charge_writes.CALL, params)


def commit(conn: sa.Connection) -> None:
    """Commit ``conn``'s transaction. On PostgreSQL, a write call still waiting goes
    with the ``COMMIT`` in one message: if the call fails, the ``COMMIT`` does not run
    and the call's error is raised here."""
    params = conn.info.pop(_PENDING, None)
    if params is not None:
        with psycopg.ClientCursor(_raw(conn)) as cur:
            cur.execute(f"{charge_writes.CALL}; COMMIT", params)
    conn.commit()  # the driver's transaction has ended: SQLAlchemy ends its own


def first_value(conn: sa.Connection, query: str, params: Sequence[Any]) -> str | None:
    """The first value of ``query`` (PostgreSQL) as text, run as the first statement of
    the transaction: its ``BEGIN`` goes with it in one message. Later in a transaction,
    or on a connection that starts its transactions otherwise, it is an ordinary
    statement."""
    raw = driver(conn)
    begin = _begin_command(raw)
    if begin is None:
        with raw.execute(query, params) as cur:
            value = cur.fetchone()[0]
        return None if value is None else str(value)
    text = psycopg.ClientCursor(raw).mogrify(query, params)
    with raw.lock:
        raw.pgconn.send_query(f"{begin}; {text}".encode(raw.info.encoding))
        results = raw.wait(generators.execute(raw.pgconn))
    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
    text_value = results[-1].get_value(0, 0)
    return None if text_value is None else bytes(text_value).decode(raw.info.encoding)


def _begin_command(raw: Any) -> str | None:
    """What psycopg would send to start ``raw``'s transaction now; None when it would
    send nothing (in a transaction already, or in autocommit) or more than a plain
    isolation level."""
    if (
        raw.autocommit
        or raw.pgconn.transaction_status != pq.TransactionStatus.IDLE
        or raw.read_only is not None
        or raw.deferrable is not None
    ):
        return None
    level = raw.isolation_level
    return "BEGIN" if level is None else f"BEGIN ISOLATION LEVEL {level.name.replace('_', ' ')}"


def _before_statement(conn: sa.Connection, *_: object) -> None:
    if not conn.invalidated:
        send_pending(conn)


def _drop_pending(conn: sa.Connection) -> None:
    if not conn.invalidated:  # an invalidated connection's next one starts with no info
        conn.info.pop(_PENDING, None)


def _drop_pending_of_record(_dbapi_conn: object, record: Any) -> None:
    record.info.pop(_PENDING, None)


# Whatever runs a statement or commits after the block sends the call first; a rollback
# or a connection going back to the pool drops it. Every engine, as every engine's
# connections may hold a call.
sa.event.listen(sa.engine.Engine, "before_cursor_execute", _before_statement)
sa.event.listen(sa.engine.Engine, "commit", _before_statement)
sa.event.listen(sa.engine.Engine, "rollback", _drop_pending)
sa.event.listen(sa.pool.Pool, "checkin", _drop_pending_of_record)


class _Gathered:
    """The rows of :data:`charge_writes.SLOTS` written inside :func:`in_one_call`."""

    def __init__(self) -> None:
        self.rows: list[list[Sequence[Any]]] = []
        self.keys: list[set[Any]] = []
        self.last = -1
        self._empty()

    def _empty(self) -> None:
        self.rows = [[] for _ in charge_writes.SLOTS]
        self.keys = [set() for _ in charge_writes.SLOTS]
        self.last = -1

    def take(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        key: str | None = None,
        bump: str | None = None,
    ) -> bool:
        """Keep ``rows`` for the call when they fit a slot after those already kept (the
        function writes in slot order), and an update's keys are new to it (it joins
        each key once); otherwise leave them to be written now."""
        write = (table, tuple(columns), key, bump)
        for index in range(max(self.last, 0), len(charge_writes.WRITES)):
            if charge_writes.WRITES[index] == write:
                break
        else:
            return False
        if key is not None:
            keys = {row[0] for row in rows}
            if len(keys) < len(rows) or not keys.isdisjoint(self.keys[index]):
                return False
            self.keys[index] |= keys
        self.rows[index].extend(rows)
        self.last = index
        return True

    def send(self, conn: sa.Connection) -> None:
        """One call for what was kept, then nothing is kept. The call waits for the
        next statement or the commit (:data:`_PENDING`)."""
        if self.last < 0:
            return
        params = [orjson.dumps(rows).decode() if rows else None for rows in self.rows]
        self._empty()
        send_pending(conn)
        conn.info[_PENDING] = params


def _gathering(conn: sa.Connection) -> _Gathered | None:
    gathered: _Gathered | None = conn.info.get(_GATHERED)
    return gathered


@contextlib.contextmanager
def in_one_call(conn: sa.Connection) -> Iterator[None]:
    """On PostgreSQL, the inserts and additions inside that ``charge_writes`` knows are
    sent as one call (or before a write it does not know, so the order holds); each
    table's rows as one JSON document. For a few rows: the function joins the updates'
    keys one index search each. The call leaves with the next statement on the
    connection or with the ``COMMIT`` (:func:`commit`), where its errors surface; a
    rollback drops it. On SQLite, statements run one by one, as anywhere."""
    if not is_postgres(conn) or _gathering(conn) is not None:
        yield
        return
    gathered = conn.info[_GATHERED] = _Gathered()
    try:
        yield
    finally:
        del conn.info[_GATHERED]
    gathered.send(conn)


def insert_rows(
    conn: sa.Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    if not rows:
        return
    gathered = _gathering(conn)
    if gathered is not None:
        if gathered.take(table, columns, rows):
            return
        gathered.send(conn)
    names = ", ".join(columns)
    if is_postgres(conn):
        if len(rows) <= VALUES_ROWS or _in_pipeline(conn):
            # COPY cannot travel in a pipeline: there, many rows go as several inserts
            # of at most VALUES_ROWS rows each, all in the same round trip.
            for start in range(0, len(rows), VALUES_ROWS):
                chunk = rows[start : start + VALUES_ROWS]
                sql = _values_insert(table, tuple(columns), len(chunk))
                with psycopg.RawCursor(driver(conn)) as cur:
                    cur.execute(sql, [value for row in chunk for value in row])
            return
        with driver(conn).cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    driver(conn).executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


LOOKUPS = 64
"""Up to this many values, :func:`select_in` searches PostgreSQL's index once per value;
more, it hashes them (below)."""


def reuse_plans(conn: sa.Connection, rows: int) -> None:
    """For the rest of the transaction, when it handles at most ``LOOKUPS`` rows, each
    prepared statement runs on the plan PostgreSQL made for it once, for any parameters.

    Left to choose, PostgreSQL plans the lookups of a few single-event POSTs anew on
    every call (0.15 ms for the teams' lock alone), because its plan for any parameters
    looks dearer than one for the values at hand. For this module's few-row statements
    the two are the same plan: one index search per value (the lateral lookups below),
    one row per ``VALUES`` tuple, one key per update. Larger sets are hashed, and their
    plans are made for the number of values they hold, so they keep choosing. ``SET
    LOCAL`` ends with the transaction, commit or rollback; the pooled connection goes
    back as it was."""
    if is_postgres(conn) and rows <= LOOKUPS:
        driver(conn).execute("SET LOCAL plan_cache_mode = force_generic_plan")


def lookup_sql(sql_prefix: str, column: str, suffix: str, values: str) -> str:
    """The PostgreSQL statement of :func:`select_in` for at most ``LOOKUPS`` values,
    ``values`` the SQL of their text array.

    Each value is looked up on its own (a lateral subquery, fenced by OFFSET 0 so that it
    stays a nested loop), in the order given: an index search each, however the table
    has grown or bloated. A lock is taken in that order."""
    lock = suffix.endswith("FOR UPDATE")
    order = suffix.removesuffix("FOR UPDATE").strip()
    return (
        f"SELECT s.* FROM unnest({values}) AS k(v) CROSS JOIN LATERAL "
        f"({sql_prefix} AND {column} = k.v OFFSET 0{' FOR UPDATE' if lock else ''}) "
        f"AS s {order}"
    ).strip()


def pairs_sql(sql_prefix: str, columns: tuple[str, str], firsts: str, seconds: str) -> str:
    """The PostgreSQL statement of :func:`select_pairs`, ``firsts`` and ``seconds`` the
    SQL of the pairs' two text arrays."""
    a, b = columns
    return (
        f"SELECT s.* FROM unnest({firsts}, {seconds}) AS k(a, b) CROSS JOIN LATERAL "
        f"({sql_prefix} WHERE {a} = k.a AND {b} = k.b OFFSET 0) AS s"
    )


def select_in(
    conn: sa.Connection,
    sql_prefix: str,
    fixed: Sequence[Any],
    column: str,
    values: Sequence[Any],
    suffix: str = "",
) -> Callable[[], Rows]:
    """Rows of ``<sql_prefix> AND <column> IN values <suffix>``, ``fixed`` parameters first:
    sent now, read when the answer is called.

    ``sql_prefix`` uses ``%s`` placeholders for PostgreSQL; they become ``?`` on SQLite.
    On SQLite, long lists are read in chunks (``suffix`` then applies per chunk).
    """
    if not values:
        return _ready([])
    if is_postgres(conn):
        sql, param = _array(values, "text")
        if len(values) <= LOOKUPS:
            query = lookup_sql(sql_prefix, column, suffix, sql)
            args = [param, *fixed]
        else:
            # A semi-join, not ``= ANY(array)``: a prepared statement's generic plan can
            # not hash an array that is a parameter, and on a small table it chose a scan
            # comparing every row with every element (85 ms for the grants of 1,000
            # teams). The join hashes the values. The tables read so (teams, grants,
            # prices, tokens, webhooks) grow with the teams, not with usage.
            query = f"{sql_prefix} AND {column} IN (SELECT unnest({sql})) {suffix}"
            args = [*fixed, param]
        cur = driver(conn).cursor()
        cur.execute(query, args)
        return _later(cur)
    out: Rows = []
    prefix = sql_prefix.replace("%s", "?")
    suffix = suffix.replace("FOR UPDATE", "")
    for i in range(0, len(values), _SQLITE_CHUNK):
        chunk = values[i : i + _SQLITE_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        out += driver(conn).execute(
            f"{prefix} AND {column} IN ({marks}) {suffix}", [*fixed, *chunk]
        )
    return _ready(out)


def select_pairs(
    conn: sa.Connection,
    sql_prefix: str,
    columns: tuple[str, str],
    pairs: Sequence[tuple[Any, Any]],
) -> Callable[[], Rows]:
    """Rows of ``<sql_prefix> WHERE (a, b) IN pairs``, in one round trip on PostgreSQL;
    sent now, read when the answer is called."""
    if not pairs:
        return _ready([])
    a, b = columns
    if is_postgres(conn):
        # One search of the index per pair (a lateral subquery, fenced by OFFSET 0 so it
        # stays a nested loop): a prepared statement's plan made while the table was
        # small hashed the pairs against a scan of all of it, and kept doing so as the
        # usage table grew (0.5 ms a lookup, then 1.9 ms 12,000 events later).
        firsts, firsts_param = _array([p[0] for p in pairs], "text")
        seconds, seconds_param = _array([p[1] for p in pairs], "text")
        cur = driver(conn).cursor()
        cur.execute(pairs_sql(sql_prefix, columns, firsts, seconds), [firsts_param, seconds_param])
        return _later(cur)
    # SQLite runs ``(a, b) IN (VALUES …)`` as a scan of the whole table, so join the
    # pairs instead, as the outer loop (CROSS JOIN fixes the order): one index search
    # per pair, however large the table grows.
    select, sep, table = sql_prefix.partition(" FROM ")
    assert sep, "sql_prefix is SELECT … FROM table"
    out: Rows = []
    for i in range(0, len(pairs), _SQLITE_CHUNK):
        chunk = pairs[i : i + _SQLITE_CHUNK]
        marks = ", ".join("(?, ?)" for _ in chunk)
        flat = [v for pair in chunk for v in pair]
        out += driver(conn).execute(
            f"{select} FROM (VALUES {marks}) AS v CROSS JOIN {table} "
            f"ON {a} = v.column1 AND {b} = v.column2",
            flat,
        )
    return _ready(out)


def add_to_columns(
    conn: sa.Connection,
    table: str,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    bump: str | None = None,
    returning: str | None = None,
) -> dict[Any, Any]:
    """``UPDATE table SET col = col + delta … WHERE key = k`` for each (k, *deltas).

    ``returning``: a column whose new value is answered by key (in the same round trip
    on PostgreSQL)."""
    if not rows:
        return {}
    gathered = _gathering(conn)
    if gathered is not None:
        if returning is None and gathered.take(table, columns, rows, key, bump):
            return {}
        gathered.send(conn)
    postgres = is_postgres(conn)
    if postgres and len(rows) > VALUES_ROWS:
        sets = [f"{c} = {table}.{c} + v.d{i}" for i, c in enumerate(columns)]
        sets += [f"{bump} = {table}.{bump} + 1"] if bump else []
        arrays = [
            _array(a, "text" if i == 0 else "bigint") for i, a in enumerate(zip(*rows, strict=True))
        ]
        unnest = ", ".join(sql for sql, _ in arrays)
        names = ", ".join(["k"] + [f"d{i}" for i in range(len(columns))])
        back = f" RETURNING {table}.{key}, {table}.{returning}" if returning else ""
        with driver(conn).cursor() as cur:
            cur.execute(
                f"UPDATE {table} SET {', '.join(sets)} FROM unnest({unnest}) AS v({names}) "
                f"WHERE {table}.{key} = v.k{back}",
                [param for _, param in arrays],
            )
            return dict(cur.fetchall()) if returning else {}
    # One statement a row. On PostgreSQL all of them go in one round trip, each a search
    # of the key's index whatever the planner knows of the table: the few keys joined as
    # a set, under a plan made with the table's size unknown or small, scanned the whole
    # table (0.28 ms a group of two single-event POSTs, on 2,000 grants; decision 0036).
    mark, delta = ("%s", "%s::bigint") if postgres else ("?", "?")
    plain = [f"{c} = {c} + {delta}" for c in columns] + ([f"{bump} = {bump} + 1"] if bump else [])
    update = f"UPDATE {table} SET {', '.join(plain)} WHERE {key} = {mark}"
    params = [(*r[1:], r[0]) for r in rows]
    if postgres:
        back = f" RETURNING {key}, {returning}" if returning else ""
        with driver(conn).cursor() as cur:
            cur.executemany(update + back, params, returning=returning is not None)
            answered: dict[Any, Any] = {}
            while returning:
                answered.update(cur.fetchall())
                if not cur.nextset():
                    break
            return answered
    driver(conn).executemany(update, params)
    if not returning:
        return {}
    keys = [r[0] for r in rows]
    return dict(
        select_in(conn, f"SELECT {key}, {returning} FROM {table} WHERE 1 = 1", (), key, keys)()
    )
