"""SQLite's change counter: a commit of this process is seen by the next read at once;
one of another process (a plain sqlite3 connection here, which this process's engines
do not see) within ``CHECK_SECONDS``."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa

from creditledger.adapters.db import changes
from creditledger.adapters.db.changes import SqliteChangeCounter


def test_own_commits_move_the_counter_at_once_and_others_within_the_bound(
    tmp_path: Path,
) -> None:
    path = tmp_path / "counter.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    counter = SqliteChangeCounter(str(path))
    try:
        first = counter()
        assert counter() == first  # nothing committed: the read answers again

        with engine.begin() as conn:  # this process, through an engine
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        second = counter()
        assert second != first

        other = sqlite3.connect(path, isolation_level=None)  # another process's commit
        other.execute("INSERT INTO t VALUES (2)")
        other.close()
        time.sleep(changes.CHECK_SECONDS * 2)
        assert counter() != second
    finally:
        counter.close()
        engine.dispose()
