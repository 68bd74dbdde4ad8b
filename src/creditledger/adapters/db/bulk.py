"""Set-based writes and lookups on the driver connection, for the ingestion hot path.

PostgreSQL gets COPY and array parameters (one round trip however many rows);
SQLite gets prepared ``executemany``. Both run inside the unit of work's
transaction. Values are passed as the database stores them (micros, nanos).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

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
    row = "(" + ", ".join("%s" for _ in columns) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * count)


def is_postgres(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _driver(conn: sa.Connection) -> Any:
    return conn.connection.driver_connection


def insert_rows(
    conn: sa.Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    if not rows:
        return
    names = ", ".join(columns)
    if is_postgres(conn):
        if len(rows) <= VALUES_ROWS:
            sql = _values_insert(table, tuple(columns), len(rows))
            with _driver(conn).cursor() as cur:
                cur.execute(sql, [value for row in rows for value in row])
            return
        with _driver(conn).cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    _driver(conn).executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


def select_in(
    conn: sa.Connection,
    sql_prefix: str,
    fixed: Sequence[Any],
    column: str,
    values: Sequence[Any],
    suffix: str = "",
) -> list[tuple[Any, ...]]:
    """Rows of ``<sql_prefix> AND <column> IN values <suffix>``, ``fixed`` parameters first.

    ``sql_prefix`` uses ``%s`` placeholders for PostgreSQL; they become ``?`` on SQLite.
    On SQLite, long lists are read in chunks (``suffix`` then applies per chunk).
    """
    if not values:
        return []
    if is_postgres(conn):
        sql, param = _array(values, "text")
        with _driver(conn).cursor() as cur:
            cur.execute(f"{sql_prefix} AND {column} = ANY({sql}) {suffix}", [*fixed, param])
            return list(cur.fetchall())
    out: list[tuple[Any, ...]] = []
    prefix = sql_prefix.replace("%s", "?")
    suffix = suffix.replace("FOR UPDATE", "")
    for i in range(0, len(values), _SQLITE_CHUNK):
        chunk = values[i : i + _SQLITE_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        out += _driver(conn).execute(
            f"{prefix} AND {column} IN ({marks}) {suffix}", [*fixed, *chunk]
        )
    return out


def select_pairs(
    conn: sa.Connection,
    sql_prefix: str,
    columns: tuple[str, str],
    pairs: Sequence[tuple[Any, Any]],
) -> list[tuple[Any, ...]]:
    """Rows of ``<sql_prefix> WHERE (a, b) IN pairs``, in one round trip on PostgreSQL."""
    if not pairs:
        return []
    a, b = columns
    if is_postgres(conn):
        firsts, firsts_param = _array([p[0] for p in pairs], "text")
        seconds, seconds_param = _array([p[1] for p in pairs], "text")
        with _driver(conn).cursor() as cur:
            cur.execute(
                f"{sql_prefix} WHERE ({a}, {b}) IN (SELECT * FROM unnest({firsts}, {seconds}))",
                [firsts_param, seconds_param],
            )
            return list(cur.fetchall())
    # SQLite runs ``(a, b) IN (VALUES …)`` as a scan of the whole table, so join the
    # pairs instead, as the outer loop (CROSS JOIN fixes the order): one index search
    # per pair, however large the table grows.
    select, sep, table = sql_prefix.partition(" FROM ")
    assert sep, "sql_prefix is SELECT … FROM table"
    out: list[tuple[Any, ...]] = []
    for i in range(0, len(pairs), _SQLITE_CHUNK):
        chunk = pairs[i : i + _SQLITE_CHUNK]
        marks = ", ".join("(?, ?)" for _ in chunk)
        flat = [v for pair in chunk for v in pair]
        out += _driver(conn).execute(
            f"{select} FROM (VALUES {marks}) AS v CROSS JOIN {table} "
            f"ON {a} = v.column1 AND {b} = v.column2",
            flat,
        )
    return out


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
    sets = [f"{c} = {table}.{c} + v.d{i}" for i, c in enumerate(columns)]
    if bump:
        sets.append(f"{bump} = {table}.{bump} + 1")
    if is_postgres(conn):
        arrays = [
            _array(a, "text" if i == 0 else "bigint") for i, a in enumerate(zip(*rows, strict=True))
        ]
        unnest = ", ".join(sql for sql, _ in arrays)
        names = ", ".join(["k"] + [f"d{i}" for i in range(len(columns))])
        back = f" RETURNING {table}.{key}, {table}.{returning}" if returning else ""
        with _driver(conn).cursor() as cur:
            cur.execute(
                f"UPDATE {table} SET {', '.join(sets)} FROM unnest({unnest}) AS v({names}) "
                f"WHERE {table}.{key} = v.k{back}",
                [param for _, param in arrays],
            )
            return dict(cur.fetchall()) if returning else {}
    plain = [f"{c} = {c} + ?" for c in columns] + ([f"{bump} = {bump} + 1"] if bump else [])
    _driver(conn).executemany(
        f"UPDATE {table} SET {', '.join(plain)} WHERE {key} = ?",
        [(*r[1:], r[0]) for r in rows],
    )
    if not returning:
        return {}
    keys = [r[0] for r in rows]
    return dict(
        select_in(conn, f"SELECT {key}, {returning} FROM {table} WHERE 1 = 1", (), key, keys)
    )
