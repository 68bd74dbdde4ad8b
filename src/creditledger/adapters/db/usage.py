"""Usage events: dedup lookups, bulk inserts and the usage report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.types import from_micros
from creditledger.domain.usage_report import UsageRow

_CHUNK = 500


class SqlUsage:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def fingerprints(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Fingerprints of the events already stored among ``keys`` (team id, event id)."""
        found: dict[tuple[str, str], str] = {}
        e = t.usage_events
        by_team: dict[str, list[str]] = {}
        for team_id, event_id in keys:
            by_team.setdefault(team_id, []).append(event_id)
        for team_id, ids in by_team.items():
            for i in range(0, len(ids), _CHUNK):
                rows = self.conn.execute(
                    sa.select(e.c.event_id, e.c.fingerprint).where(
                        e.c.team_id == team_id, e.c.event_id.in_(ids[i : i + _CHUNK])
                    )
                )
                for event_id, fp in rows:
                    found[(team_id, event_id)] = fp
        return found

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(t.usage_events.insert(), list(rows))

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
