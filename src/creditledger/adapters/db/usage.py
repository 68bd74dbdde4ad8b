"""Usage events: dedup lookups, bulk inserts and the usage report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from creditledger.adapters.db import bulk
from creditledger.adapters.db import tables as t
from creditledger.adapters.db.types import from_micros, to_micros
from creditledger.domain.pricing import Price
from creditledger.domain.usage import UsageRecord, decode_draws, encode_draws
from creditledger.domain.usage_report import UsageRow

_COLUMNS = (
    "team_id",
    "event_id",
    "fingerprint",
    "product",
    "model",
    "gpu",
    "occurred_at",
    "charge_nanos",
    "uncovered_nanos",
    "transaction_id",
    "received_at",
    "draws",
    "unit",
    "quantity",
)

FINGERPRINTS = "SELECT team_id, event_id, fingerprint FROM usage_events"
"""Stored fingerprints by ``FINGERPRINT_KEY``: the rows of :func:`fingerprints_by_key`."""
FINGERPRINT_KEY = ("team_id", "event_id")


def fingerprints_by_key(rows: Sequence[Sequence[Any]]) -> dict[tuple[str, str], str]:
    return {(team_id, event_id): fp for team_id, event_id, fp in rows}


class SqlUsage:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def fingerprints(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Fingerprints of the events already stored among ``keys`` (team id, event id)."""
        return self.fingerprints_later(keys)()

    def fingerprints_later(
        self, keys: Sequence[tuple[str, str]]
    ) -> Callable[[], dict[tuple[str, str], str]]:
        """:meth:`fingerprints`, sent now (``bulk.together`` sends it with others)."""
        later = bulk.select_pairs(self.conn, FINGERPRINTS, FINGERPRINT_KEY, keys)
        return lambda: fingerprints_by_key(later())

    def add(self, rows: Sequence[UsageRecord]) -> None:
        bulk.insert_rows(
            self.conn,
            "usage_events",
            _COLUMNS,
            [
                (
                    r.team_id,
                    r.event_id,
                    r.fingerprint,
                    r.product,
                    r.model,
                    r.gpu,
                    to_micros(r.occurred_at),
                    r.charge,
                    r.uncovered,
                    r.transaction_id,
                    to_micros(r.received_at),
                    encode_draws(r.draws),
                    r.unit,
                    r.quantity,
                )
                for r in rows
            ],
        )

    def latest(self, team_id: str) -> tuple[datetime, str] | None:
        """The team's latest charged event, as (occurred_at, event id): one index probe."""
        e = t.usage_events
        row = self.conn.execute(
            sa.select(e.c.occurred_at, e.c.event_id)
            .where(e.c.team_id == team_id)
            .order_by(e.c.occurred_at.desc(), e.c.event_id.desc())
            .limit(1)
        ).first()
        return None if row is None else (row.occurred_at, row.event_id)

    def charged_since(self, team_id: str, since: datetime) -> list[UsageRecord]:
        """The team's events at or after ``since``, in (time, id) order."""
        e = t.usage_events
        rows = self.conn.execute(
            sa.select(e)
            .where(e.c.team_id == team_id, e.c.occurred_at >= since)
            .order_by(e.c.occurred_at, e.c.event_id)
        )
        return [
            UsageRecord(
                team_id=r.team_id,
                event_id=r.event_id,
                fingerprint=r.fingerprint,
                product=r.product,
                model=r.model,
                gpu=r.gpu,
                occurred_at=r.occurred_at,
                charge=r.charge_nanos,
                uncovered=r.uncovered_nanos,
                transaction_id=r.transaction_id,
                received_at=r.received_at,
                draws=decode_draws(r.draws),
                unit=r.unit,
                quantity=r.quantity,
            )
            for r in rows
        ]

    def subjects_since(
        self, since: datetime, prices: Sequence[Price]
    ) -> set[tuple[str, str | None, str | None]]:
        """The (product, model, gpu) of every team's events at or after ``since`` that
        any of ``prices`` could apply to (same product, and its model or its GPU)."""
        if not prices:
            return set()
        e = t.usage_events
        models = sorted({p.model for p in prices if p.model is not None})
        gpus = sorted({p.gpu for p in prices if p.gpu is not None})
        rows = self.conn.execute(
            sa.select(e.c.product, e.c.model, e.c.gpu)
            .where(
                e.c.occurred_at >= since,
                e.c.product.in_(sorted({p.product for p in prices})),
                sa.or_(e.c.model.in_(models), e.c.gpu.in_(gpus)),
            )
            .distinct()
        )
        return {(r.product, r.model, r.gpu) for r in rows}

    def reallocate(self, rows: Sequence[UsageRecord]) -> None:
        """Store the new split of events that a late event re-allocated."""
        e = t.usage_events
        if rows:
            self.conn.execute(
                e.update()
                .where(e.c.team_id == sa.bindparam("tid"), e.c.event_id == sa.bindparam("eid"))
                .values(uncovered_nanos=sa.bindparam("unc"), draws=sa.bindparam("dr")),
                [
                    {
                        "tid": r.team_id,
                        "eid": r.event_id,
                        "unc": r.uncovered,
                        "dr": encode_draws(r.draws),
                    }
                    for r in rows
                ],
            )

    def report(
        self,
        team_id: str,
        since: datetime,
        until: datetime,
        bucket_micros: int,
        by_model: bool,
    ) -> list[UsageRow]:
        e = t.usage_events
        micros = sa.type_coerce(e.c.occurred_at, sa.BigInteger)
        start = ((micros // bucket_micros) * bucket_micros).label("start")
        keys: list[Any] = [start, e.c.product] + ([e.c.model] if by_model else [])
        query = (
            sa.select(
                *keys,
                sa.func.sum(e.c.charge_nanos).label("cost"),
                sa.func.sum(e.c.uncovered_nanos).label("unpaid"),
            )
            .where(e.c.team_id == team_id, e.c.occurred_at >= since, e.c.occurred_at < until)
            .group_by(*keys)
            .order_by(start, *keys[1:])
        )
        out = []
        for r in self.conn.execute(query):
            cost, unpaid = int(r.cost), int(r.unpaid)
            out.append(
                UsageRow(
                    start=from_micros(int(r.start)),
                    product=r.product,
                    model=r.model if by_model else None,
                    cost=cost,
                    covered_by_credits=cost - unpaid,
                    unpaid=unpaid,
                )
            )
        return out
