"""``bulk.insert_rows`` stores exactly what it is given, whichever way it sends it: a
multi-row INSERT for a few rows, COPY for more (PostgreSQL), executemany (SQLite)."""

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
