"""The storage floor of usage ingestion: what writing a batch costs the database alone.

C_batch and C_lite write one narrow row per event into tables with no foreign keys and
one index. A charge in creditledger keeps what the product needs: a usage record (the
idempotency key, its fingerprint, what each grant paid, for invoices and late
re-allocation), a ledger transaction, and one posting per grant touched plus its
counter-posting (double entry), in tables with their indexes, checks and foreign keys.

F_rows writes exactly those rows, with values computed before the clock starts, through
the plain driver: the same reads (the teams locked in order, stored fingerprints, the
teams' grants), then the same statements the adapters send (COPY or ``executemany``,
``UPDATE … FROM unnest``), and one commit. No domain code runs inside the timing. Its
ratio to C_batch or C_lite is the best any implementation of this schema can do; a
figure's ratio to F_rows is what our own code costs on top.

It runs on its own scratch database (the migrated schema, teams and grants inserted
directly), so its rows never meet the ledger invariants the product figures verify.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import psycopg

import _common as c
from creditledger.adapters.db.types import to_micros
from creditledger.adapters.db.uow import new_id

USAGE_COLUMNS = (
    "team_id, event_id, fingerprint, product, model, gpu, occurred_at, charge_nanos, "
    "uncovered_nanos, transaction_id, received_at, draws, unit, quantity"
)
TX_COLUMNS = "id, team_id, type, occurred_at, created_at, description, reference"
POSTING_COLUMNS = "transaction_id, account, amount_nanos, team_id, grant_id, balance_after_nanos"
CREDIT = 10**18
CHARGE = 123_456


@dataclass(slots=True)
class FloorBatch:
    """One batch's rows, ready to write."""

    teams: list[str]
    keys: list[tuple[str, str]]
    usage: list[tuple[Any, ...]]
    txs: list[tuple[Any, ...]]
    postings: list[tuple[Any, ...]]
    team_deltas: list[tuple[str, int]]
    grant_deltas: list[tuple[str, int]]


class Floor:
    """Teams with one grant each in a scratch database of the product's schema."""

    def __init__(self, team_count: int) -> None:
        self.teams = [new_id("team") for _ in range(team_count)]
        self.grants = {team: new_id("grant") for team in self.teams}
        self.credit = dict.fromkeys(self.teams, CREDIT)

    def seed_rows(self, at: datetime) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        stamp = to_micros(at)
        teams = [(t, f"floor {n}", "prepaid", CREDIT, stamp) for n, t in enumerate(self.teams)]
        grants = [
            (self.grants[t], t, "prepaid", "purchase", CREDIT, CREDIT, False, stamp, stamp)
            for t in self.teams
        ]
        return teams, grants

    def batches(
        self, teams: Sequence[str], count: int, prefix: str, at: datetime
    ) -> list[FloorBatch]:
        """``count`` batches of ``c.events``'s events over ``teams`` (some of
        :attr:`teams`), each event drawing ``CHARGE`` from its team's grant."""
        stamp = to_micros(at)
        out = []
        for b in range(count):
            events = c.events(list(teams), 1_000, f"{prefix}-{b:04d}", at)
            usage: list[tuple[Any, ...]] = []
            txs: list[tuple[Any, ...]] = []
            postings: list[tuple[Any, ...]] = []
            spent: dict[str, int] = {}
            for e in events:
                team, grant = e["team_id"], self.grants[e["team_id"]]
                tx = new_id("txn")
                self.credit[team] -= CHARGE
                spent[team] = spent.get(team, 0) + CHARGE
                draws = f"{grant}={CHARGE}"
                model = e["model"]
                row = (team, e["id"], "0" * 32, "serverless", model, None, stamp, CHARGE, 0, tx)
                usage.append((*row, stamp, draws, None, None))
                txs.append((tx, team, "usage", stamp, stamp, f"Usage {e['model']}", e["id"]))
                postings.append((tx, f"grant:{grant}", -CHARGE, team, grant, self.credit[team]))
                postings.append((tx, "platform:usage_revenue", CHARGE, None, None, None))
            teams = sorted(spent)
            out.append(
                FloorBatch(
                    teams=teams,
                    keys=[(e["team_id"], e["id"]) for e in events],
                    usage=usage,
                    txs=txs,
                    postings=postings,
                    team_deltas=[(t, -spent[t]) for t in teams],
                    grant_deltas=[(self.grants[t], -spent[t]) for t in teams],
                )
            )
        return out


@contextmanager
def postgres_writer(
    url: str, floor: Floor, at: datetime, *, seed: bool = True
) -> Iterator[Callable[[FloorBatch], int]]:
    """A function that writes one batch on PostgreSQL as the adapters do: the reads in
    one pipeline, COPY for the rows, two ``UPDATE … FROM unnest``, one commit.
    ``seed``: insert the floor's teams and grants first (once per database)."""
    with psycopg.connect(c.libpq_url(url)) as conn:
        if seed:
            teams, grants = floor.seed_rows(at)
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO teams (id, name, billing_mode, credit_nanos, created_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    teams,
                )
                cur.executemany(
                    "INSERT INTO grants (id, team_id, kind, source, amount_nanos, "
                    "remaining_nanos, is_scoped, effective_at, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    grants,
                )
            conn.commit()

        def write(batch: FloorBatch) -> int:
            with conn.cursor() as locks, conn.cursor() as seen, conn.cursor() as held:
                with conn.pipeline():
                    locks.execute(
                        "SELECT id, credit_nanos FROM teams "
                        "WHERE id IN (SELECT unnest(%s::text[])) ORDER BY id FOR UPDATE",
                        [batch.teams],
                    )
                    seen.execute(
                        "SELECT s.* FROM unnest(%s::text[], %s::text[]) AS k(a, b) "
                        "CROSS JOIN LATERAL (SELECT team_id, event_id, fingerprint "
                        "FROM usage_events WHERE team_id = k.a AND event_id = k.b OFFSET 0) s",
                        [[k[0] for k in batch.keys], [k[1] for k in batch.keys]],
                    )
                    held.execute(
                        "SELECT id, team_id, remaining_nanos FROM grants "
                        "WHERE team_id IN (SELECT unnest(%s::text[]))",
                        [batch.teams],
                    )
                locks.fetchall(), seen.fetchall(), held.fetchall()
            with conn.cursor() as cur:
                for table, columns, rows in (
                    ("usage_events", USAGE_COLUMNS, batch.usage),
                    ("ledger_transactions", TX_COLUMNS, batch.txs),
                    ("postings", POSTING_COLUMNS, batch.postings),
                ):
                    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                cur.execute(
                    "UPDATE teams SET credit_nanos = teams.credit_nanos + v.d, "
                    "revision = teams.revision + 1 "
                    "FROM unnest(%s::text[], %s::bigint[]) AS v(k, d) WHERE teams.id = v.k",
                    [[t for t, _ in batch.team_deltas], [d for _, d in batch.team_deltas]],
                )
                cur.execute(
                    "UPDATE grants SET remaining_nanos = grants.remaining_nanos + v.d "
                    "FROM unnest(%s::text[], %s::bigint[]) AS v(k, d) WHERE grants.id = v.k",
                    [[g for g, _ in batch.grant_deltas], [d for _, d in batch.grant_deltas]],
                )
            conn.commit()
            return len(batch.usage)

        yield write


def postgres_worker(url: str, floor: Floor, at: datetime, pipe: Connection) -> None:
    """A process writing floor batches on its own connection, on command (teams,
    batches, prefix, seconds, start time), until sent None; answers
    ``c.timed_batches``'s (events, start, end)."""
    with postgres_writer(url, floor, at, seed=False) as write:
        while (command := pipe.recv()) is not None:
            teams, count, prefix, seconds, start_at = command
            batches = floor.batches(teams, count, prefix, at)
            while time.monotonic() < start_at:
                time.sleep(0.001)
            pipe.send(c.timed_batches(write, batches, seconds))


@contextmanager
def sqlite_writer(url: str, floor: Floor, at: datetime) -> Iterator[Callable[[FloorBatch], int]]:
    """The same on SQLite, with the engine's pragmas and ``executemany``."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        teams, grants = floor.seed_rows(at)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO teams (id, name, billing_mode, credit_nanos, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            teams,
        )
        conn.executemany(
            "INSERT INTO grants (id, team_id, kind, source, amount_nanos, remaining_nanos, "
            "is_scoped, effective_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            grants,
        )
        conn.execute("COMMIT")

        def write(batch: FloorBatch) -> int:
            conn.execute("BEGIN IMMEDIATE")
            for start in range(0, len(batch.teams), 500):
                chunk = batch.teams[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                conn.execute(f"SELECT id, credit_nanos FROM teams WHERE id IN ({marks})", chunk)
                conn.execute(
                    f"SELECT id, team_id, remaining_nanos FROM grants WHERE team_id IN ({marks})",
                    chunk,
                ).fetchall()
            for start in range(0, len(batch.keys), 500):
                pairs = batch.keys[start : start + 500]
                marks = ", ".join("(?, ?)" for _ in pairs)
                conn.execute(
                    f"SELECT fingerprint FROM (VALUES {marks}) AS v CROSS JOIN usage_events "
                    "ON team_id = v.column1 AND event_id = v.column2",
                    [v for pair in pairs for v in pair],
                ).fetchall()
            for table, columns, rows in (
                ("usage_events", USAGE_COLUMNS, batch.usage),
                ("ledger_transactions", TX_COLUMNS, batch.txs),
                ("postings", POSTING_COLUMNS, batch.postings),
            ):
                marks = ", ".join("?" * len(rows[0]))
                conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
            conn.executemany(
                "UPDATE teams SET credit_nanos = credit_nanos + ?, revision = revision + 1 "
                "WHERE id = ?",
                [(d, t) for t, d in batch.team_deltas],
            )
            conn.executemany(
                "UPDATE grants SET remaining_nanos = remaining_nanos + ? WHERE id = ?",
                [(d, g) for g, d in batch.grant_deltas],
            )
            conn.execute("COMMIT")
            return len(batch.usage)

        yield write
    finally:
        conn.close()
