"""``bulk.insert_rows`` stores exactly what it is given, whichever way it sends it: a
multi-row INSERT for a few rows, COPY for more (PostgreSQL), executemany (SQLite); and
``bulk.add_to_columns`` adds exactly the deltas it is given, one statement a row for a
few rows or joined with the keys as a set for more (PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from creditledger.adapters.db import bulk
from creditledger.services.context import Context


def _rows(count: int) -> list[tuple[Any, ...]]:
    return [
        (
            f"row_{n:04d}",
            n * 10**15 if n % 2 else -n,
            None if n % 3 == 0 else f"tab\tnewline\n quote' backslash\\ é {n}",
            '{"models": ["llama"]}' if n % 4 == 0 else None,
        )
        for n in range(count)
    ]


@pytest.mark.parametrize("count", [1, bulk.VALUES_ROWS, bulk.VALUES_ROWS + 1, 500])
def test_rows_are_stored_as_given(ctx: Context, count: int) -> None:
    with ctx.uow() as uow:
        conn: sa.Connection = uow.conn  # type: ignore[attr-defined]
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE bulk_probe (id TEXT PRIMARY KEY, n BIGINT, note TEXT, doc TEXT)"
        )
        rows = _rows(count)
        bulk.insert_rows(conn, "bulk_probe", ("id", "n", "note", "doc"), rows)
        stored = conn.exec_driver_sql("SELECT id, n, note, doc FROM bulk_probe ORDER BY id")
        assert [tuple(r) for r in stored] == rows


@pytest.mark.parametrize("count", [1, bulk.VALUES_ROWS, bulk.VALUES_ROWS + 1, 300])
@pytest.mark.parametrize("returning", [False, True])
def test_deltas_are_added_to_exactly_the_rows_named(
    ctx: Context, count: int, returning: bool
) -> None:
    with ctx.uow() as uow:
        conn: sa.Connection = uow.conn  # type: ignore[attr-defined]
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE bulk_sums "
            "(id TEXT PRIMARY KEY, a BIGINT NOT NULL, b BIGINT NOT NULL, n INTEGER NOT NULL)"
        )
        ids = [f"k_{n:04d}" for n in range(count + 10)]  # ten rows no delta names
        bulk.insert_rows(
            conn, "bulk_sums", ("id", "a", "b", "n"), [(k, 7 * 10**15, -5, 1) for k in ids]
        )
        deltas = [(k, n * 10**12 - 3, -n) for n, k in enumerate(ids[:count])]

        answered = bulk.add_to_columns(
            conn,
            "bulk_sums",
            "id",
            ("a", "b"),
            deltas,
            bump="n",
            returning="a" if returning else None,
        )

        stored = {r[0]: tuple(r[1:]) for r in conn.exec_driver_sql("SELECT * FROM bulk_sums")}
        expected = dict.fromkeys(ids, (7 * 10**15, -5, 1))
        for k, da, db in deltas:
            expected[k] = (7 * 10**15 + da, -5 + db, 2)
        assert stored == expected
        assert answered == ({k: expected[k][0] for k, _, _ in deltas} if returning else {})
