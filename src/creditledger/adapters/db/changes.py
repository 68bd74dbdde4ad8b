"""What changed: pushed by PostgreSQL (``LISTEN creditledger_changes`` in a thread), or
seen by SQLite (``PRAGMA data_version``, read by the decisions themselves).

The notices come from triggers (migrations 0010, 0012): ``teams:<id> <id> …`` for the
teams whose revision a statement moved, ``prices`` when a price book is added. Each
goes to the subscriber as it comes, a team's as ``team:<id>``;
``*`` means "anything may have changed": sent when the listening connection is (re)made,
so what was cached before it is thrown away. While the connection is down the feed is
not :attr:`live`, and readers go back to reading the database per decision.

SQLite can only say *that* something was committed, not what: its feed sends
``?`` ("check what you hold") when the data version moves.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable

import psycopg
import sqlalchemy as sa
from psycopg.conninfo import make_conninfo

log = logging.getLogger(__name__)

CHANNEL = "creditledger_changes"
EVERYTHING = "*"
SOMETHING = "?"
TEAM = "team:"
TEAMS = "teams:"


def _conninfo(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://…?options=…``) as a libpq conninfo."""
    parsed = sa.make_url(url)
    args = {
        k: str(v)
        for k, v in parsed.translate_connect_args(username="user", database="dbname").items()
    }
    for key, value in parsed.query.items():
        args[key] = value if isinstance(value, str) else value[-1]
    return make_conninfo(**args)


class PgChangeFeed:
    def __init__(self, url: str, on_change: Callable[[str], None], retry_seconds: float = 1.0):
        self.conninfo = _conninfo(url)
        self.on_change = on_change
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._live = threading.Event()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)

    @property
    def live(self) -> bool:
        return self._live.is_set()

    def start(self, wait_seconds: float = 5.0) -> None:
        self._thread.start()
        self._live.wait(wait_seconds)

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.cancel()
        self._thread.join(timeout=5)

    def poll(self) -> None:
        """Notices are pushed: nothing to look for."""

    def drop_connection(self) -> None:
        """Close the listening connection, as a network fault would (for tests)."""
        conn = self._conn
        if conn is not None:
            conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.on_change(EVERYTHING)
                    self._live.set()
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            self._hand_on(notice.payload)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning("change feed lost its connection: %s", exc)
            finally:
                self._live.clear()
                self._conn = None
            self._stop.wait(self.retry_seconds)

    def _hand_on(self, payload: str) -> None:
        if not payload.startswith(TEAMS):
            self.on_change(payload)
            return
        for team_id in payload[len(TEAMS) :].split():
            self.on_change(TEAM + team_id)


CHECK_SECONDS = 0.001
"""How long a read of SQLite's data version answers for, while this process commits
nothing: a commit by another process reaches this one's decisions at most this much
later (PostgreSQL's notices take longer)."""

_ticks = itertools.count(1)
_local_commits = [0]
"""A new number at every commit of this process (every engine), before and after each
(below); ``next`` on a counter can not hand two threads the same one."""


def _committed(*_: object) -> None:
    _local_commits[0] = next(_ticks)


# Before a commit, and again when its connection goes back to the pool (after it): a
# data version read in between is not kept past the second count.
sa.event.listen(sa.engine.Engine, "commit", _committed)
sa.event.listen(sa.pool.Pool, "checkin", _committed)


class SqliteChangeCounter:
    """SQLite's cheap change counter: ``PRAGMA data_version`` on a connection of its
    own that never writes, so it moves whenever any other connection, in this process
    or another, commits to the file. While it has not moved, nothing has changed.

    A read answers for :data:`CHECK_SECONDS` unless this process commits meanwhile: at
    the rate of decisions the read (several µs) costs more than the decision, and this
    process's own commits are seen at once."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._kept: tuple[float, int, int] | None = None
        """When the version was read, the local commits counted before it, the version."""

    def __call__(self) -> int:
        kept = self._kept
        now = time.monotonic()
        if kept is not None and kept[1] == _local_commits[0] and now - kept[0] < CHECK_SECONDS:
            return kept[2]
        local = _local_commits[0]
        with self._lock:
            row = self._conn.execute("PRAGMA data_version").fetchone()
        version = int(row[0])
        self._kept = (now, local, version)
        return version

    def close(self) -> None:
        with self._lock:
            self._conn.close()


POLL_SECONDS = 0.002
"""How often :class:`SqliteChangeFeed` reads the data version (a few µs each)."""


class SqliteChangeFeed:
    """SQLite's change counter, read by the decisions themselves (:meth:`poll`, at most
    every :data:`POLL_SECONDS`): ``?`` to the subscriber whenever the data version has
    moved (a commit by any connection, in any process), ``*`` when the watch begins or
    begins again after an error. No thread: one would wake hundreds of times a second
    and take the interpreter from the requests, where a read every 2 ms costs a few µs
    of one of them. Live while its connection reads."""

    def __init__(
        self,
        path: str,
        on_change: Callable[[str], None],
        poll_seconds: float = POLL_SECONDS,
        retry_seconds: float = 1.0,
    ) -> None:
        self.path = path
        self.on_change = on_change
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._version = 0
        self._next = 0.0
        """When :meth:`poll` next reads (or, while not live, tries again)."""

    @property
    def live(self) -> bool:
        return self._conn is not None

    def start(self) -> None:
        with self._lock:
            self._connect()

    def stop(self) -> None:
        with self._lock:
            self._close()

    def drop_connection(self) -> None:
        """Lose the connection, as an error would (for tests)."""
        with self._lock:
            self._close()
            self._next = time.monotonic() + self.retry_seconds

    def poll(self) -> None:
        """Read the data version if it was last read :data:`POLL_SECONDS` ago or more
        (or connect again, when the time to retry has come); another caller already
        reading it answers for this one."""
        if time.monotonic() < self._next or not self._lock.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            if now < self._next:
                return
            self._next = now + self.poll_seconds
            if self._conn is None:
                self._connect()
                return
            try:
                version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as exc:
                log.warning("change feed lost the database: %s", exc)
                self._close()
                self._next = now + self.retry_seconds
                return
            moved, self._version = version != self._version, version
        finally:
            self._lock.release()
        if moved:
            self.on_change(SOMETHING)

    def _connect(self) -> None:
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._version = conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            log.warning("change feed can not read the database: %s", exc)
            self._next = time.monotonic() + self.retry_seconds
            return
        self.on_change(EVERYTHING)
        self._conn = conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
