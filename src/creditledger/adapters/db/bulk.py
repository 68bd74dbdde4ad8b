"""Set-based writes and lookups on the driver connection, for the ingestion hot path.

PostgreSQL gets COPY and array parameters (one round trip however many rows);
SQLite gets prepared ``executemany``. Both run inside the unit of work's
transaction. Values are passed as the database stores them (micros, nanos).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

_SQLITE_CHUNK = 500


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
        with _driver(conn).cursor() as cur:
            cur.execute(f"{sql_prefix} AND {column} = ANY(%s) {suffix}", [*fixed, list(values)])
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
        firsts, seconds = zip(*pairs, strict=True)
        with _driver(conn).cursor() as cur:
            cur.execute(
                f"{sql_prefix} WHERE ({a}, {b}) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                [list(firsts), list(seconds)],
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
) -> None:
    """``UPDATE table SET col = col + delta … WHERE key = k`` for each (k, *deltas)."""
    if not rows:
        return
    sets = [f"{c} = {table}.{c} + v.d{i}" for i, c in enumerate(columns)]
    if bump:
        sets.append(f"{bump} = {table}.{bump} + 1")
    if is_postgres(conn):
        arrays = list(zip(*rows, strict=True))
        unnest = ", ".join(f"%s::{'text' if i == 0 else 'bigint'}[]" for i in range(len(arrays)))
        names = ", ".join(["k"] + [f"d{i}" for i in range(len(columns))])
        with _driver(conn).cursor() as cur:
            cur.execute(
                f"UPDATE {table} SET {', '.join(sets)} FROM unnest({unnest}) AS v({names}) "
                f"WHERE {table}.{key} = v.k",
                [list(a) for a in arrays],
            )
        return
    plain = [f"{c} = {c} + ?" for c in columns] + ([f"{bump} = {bump} + 1"] if bump else [])
    _driver(conn).executemany(
        f"UPDATE {table} SET {', '.join(plain)} WHERE {key} = ?",
        [(*r[1:], r[0]) for r in rows],
    )
