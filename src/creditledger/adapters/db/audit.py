"""The operator audit log in SQL: inserts and keyset pages, newest first."""

from __future__ import annotations

import sqlalchemy as sa

from creditledger.adapters.db import tables as t
from creditledger.domain.audit import AuditEvent, AuditFilter


class SqlAuditLog:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def record(self, event: AuditEvent) -> None:
        self.conn.execute(
            t.audit_events.insert().values(
                id=event.id,
                at=event.at,
                actor=event.actor,
                actor_name=event.actor_name,
                action=event.action,
                team_id=event.team_id,
                client=event.client,
                detail=dict(event.detail),
            )
        )

    def page(self, flt: AuditFilter, before_seq: int | None, limit: int) -> list[AuditEvent]:
        a = t.audit_events
        query = sa.select(a).order_by(a.c.seq.desc()).limit(limit)
        if before_seq is not None:
            query = query.where(a.c.seq < before_seq)
        if flt.team_id is not None:
            query = query.where(a.c.team_id == flt.team_id)
        if flt.actor is not None:
            query = query.where(a.c.actor == flt.actor)
        if flt.since is not None:
            query = query.where(a.c.at >= flt.since)
        return [
            AuditEvent(
                id=r.id,
                at=r.at,
                actor=r.actor,
                actor_name=r.actor_name,
                action=r.action,
                team_id=r.team_id,
                client=r.client,
                detail=r.detail,
                seq=r.seq,
            )
            for r in self.conn.execute(query)
        ]
