"""Notification webhooks, the notices outbox and the once-only marks, in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from creditledger.adapters.db import bulk
from creditledger.adapters.db import tables as t
from creditledger.adapters.db.repositories import insert_ignoring_conflicts
from creditledger.domain.notices import Notice, NoticeState, Webhook

_w = t.notification_webhooks.c
_n = t.notifications.c


def _webhook(row: Any) -> Webhook:
    return Webhook(
        team_id=row.team_id,
        url=row.url,
        events=None if row.events is None else tuple(row.events),
        secret=row.secret,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
    )


def _notice(row: Any) -> Notice:
    return Notice(
        id=row.id,
        team_id=row.team_id,
        type=row.type,
        payload=row.payload,
        created_at=row.created_at,
        state=NoticeState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


class SqlNotices:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def webhook(self, team_id: str) -> Webhook | None:
        row = self.conn.execute(
            sa.select(t.notification_webhooks).where(_w.team_id == team_id)
        ).first()
        return None if row is None else _webhook(row)

    def teams_with_webhooks(self, team_ids: Sequence[str]) -> set[str]:
        if not team_ids:
            return set()
        rows = bulk.select_in(
            self.conn,
            "SELECT team_id FROM notification_webhooks WHERE disabled_at IS NULL",
            (),
            "team_id",
            sorted(set(team_ids)),
        )()
        return {r[0] for r in rows}

    def save_webhook(self, webhook: Webhook, at: datetime) -> None:
        values = {
            "url": webhook.url,
            "events": None if webhook.events is None else list(webhook.events),
            "secret": webhook.secret,
            "updated_at": at,
            "disabled_at": webhook.disabled_at,
            "disabled_reason": webhook.disabled_reason,
        }
        updated = self.conn.execute(
            t.notification_webhooks.update().where(_w.team_id == webhook.team_id).values(**values)
        )
        if updated.rowcount == 0:
            self.conn.execute(
                t.notification_webhooks.insert().values(
                    team_id=webhook.team_id, created_at=webhook.created_at, **values
                )
            )

    def delete_webhook(self, team_id: str) -> bool:
        deleted = self.conn.execute(t.notification_webhooks.delete().where(_w.team_id == team_id))
        return deleted.rowcount > 0

    def disable_webhook(self, team_id: str, reason: str, at: datetime) -> None:
        self.conn.execute(
            t.notification_webhooks.update()
            .where(_w.team_id == team_id, _w.disabled_at.is_(None))
            .values(disabled_at=at, disabled_reason=reason[:500], updated_at=at)
        )

    def add(self, notice: Notice) -> None:
        self.conn.execute(
            t.notifications.insert().values(
                id=notice.id,
                team_id=notice.team_id,
                type=notice.type,
                payload=notice.payload,
                state=notice.state.value,
                attempts=notice.attempts,
                created_at=notice.created_at,
                next_attempt_at=notice.next_attempt_at,
            )
        )

    def get(self, notice_id: str) -> Notice | None:
        row = self.conn.execute(sa.select(t.notifications).where(_n.id == notice_id)).first()
        return None if row is None else _notice(row)

    def due(self, now: datetime, limit: int) -> list[Notice]:
        rows = self.conn.execute(
            sa.select(t.notifications)
            .where(
                _n.state == NoticeState.PENDING.value,
                _n.next_attempt_at <= now,
                sa.or_(_n.claimed_until.is_(None), _n.claimed_until <= now),
            )
            .order_by(_n.next_attempt_at, _n.id)
            .limit(limit)
        )
        return [_notice(r) for r in rows]

    def claim(self, notice_id: str, attempts: int, now: datetime, until: datetime) -> bool:
        """Take the notice for one delivery try: only while it is still due, unclaimed,
        and has had ``attempts`` tries (as the runner read it); False otherwise."""
        claimed = self.conn.execute(
            t.notifications.update()
            .where(
                _n.id == notice_id,
                _n.state == NoticeState.PENDING.value,
                _n.attempts == attempts,
                _n.next_attempt_at <= now,
                sa.or_(_n.claimed_until.is_(None), _n.claimed_until <= now),
            )
            .values(claimed_until=until)
        )
        return claimed.rowcount == 1

    def finish_try(
        self,
        notice_id: str,
        claimed_until: datetime,
        state: NoticeState,
        attempts: int,
        next_attempt_at: datetime | None,
        status: int | None,
        error: str | None,
        delivered_at: datetime | None,
    ) -> bool:
        """Record the try of the claim that ends at ``claimed_until``; False when that
        claim was lost (it ran out and another runner took the notice)."""
        finished = self.conn.execute(
            t.notifications.update()
            .where(_n.id == notice_id, _n.claimed_until == claimed_until)
            .values(
                state=state.value,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                claimed_until=None,
                last_status=status,
                last_error=None if error is None else error[:500],
                delivered_at=delivered_at,
            )
        )
        return finished.rowcount == 1

    def page(self, team_id: str, before_id: str | None, limit: int) -> list[Notice]:
        """The team's notices, newest first, older than ``before_id``."""
        query = sa.select(t.notifications).where(_n.team_id == team_id)
        if before_id is not None:
            query = query.where(_n.id < before_id)
        rows = self.conn.execute(query.order_by(_n.id.desc()).limit(limit))
        return [_notice(r) for r in rows]

    def mark(self, team_id: str, key: str, at: datetime) -> bool:
        """Remember ``key`` for the team; True when it was not remembered yet."""
        inserted = self.conn.execute(
            insert_ignoring_conflicts(self.conn, t.notice_marks)
            .values(team_id=team_id, key=key, created_at=at)
            .returning(t.notice_marks.c.key)
        )
        return inserted.first() is not None

    def delete_ended_before(self, at: datetime) -> int:
        """Forget delivered and failed notices created before ``at``; how many."""
        deleted = self.conn.execute(
            t.notifications.delete().where(
                _n.state.in_([NoticeState.DELIVERED.value, NoticeState.FAILED.value]),
                _n.created_at < at,
            )
        )
        return int(deleted.rowcount)
