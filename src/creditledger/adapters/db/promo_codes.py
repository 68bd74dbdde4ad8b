"""Promo codes and redemptions in SQL. Nothing here commits: the unit of work does.

The two statements that settle races are :meth:`SqlPromoCodes.claim` (one UPDATE
that counts a redemption only while the code is enabled, in its window and under
its limit) and :meth:`SqlPromoCodes.record_redemption` (an INSERT that the UNIQUE
(promo_code_id, team_id) constraint turns into a no-op for a second redemption by
the same team). Both run in the transaction that issues the grant.

Whether an ``INSERT … ON CONFLICT DO NOTHING`` stored its row is read from RETURNING,
not from the rowcount, which psycopg reports as -1 for such inserts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.repositories import insert_ignoring_conflicts
from creditledger.adapters.db.rows import scope_from_json, scope_to_json
from creditledger.domain.promo_codes import PromoCode


def promo_code_from_row(row: Any) -> PromoCode:
    return PromoCode(
        id=row.id,
        code=row.code,
        display_code=row.display_code,
        amount=row.amount_nanos,
        scope=scope_from_json(row.scope),
        valid_from=row.valid_from,
        redeem_by=row.redeem_by,
        credit_expires_at=row.credit_expires_at,
        credit_valid_days=row.credit_valid_days,
        max_redemptions=row.max_redemptions,
        redemptions=row.redemptions_count,
        disabled_at=row.disabled_at,
        created_at=row.created_at,
    )


class SqlPromoCodes:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, code: PromoCode, created_by: str) -> bool:
        """Store a new code; False (and nothing stored) when its text is already in use."""
        inserted = self.conn.execute(
            insert_ignoring_conflicts(self.conn, t.promo_codes)
            .values(
                id=code.id,
                code=code.code,
                display_code=code.display_code,
                amount_nanos=code.amount,
                scope=scope_to_json(code.scope),
                valid_from=code.valid_from,
                redeem_by=code.redeem_by,
                credit_expires_at=code.credit_expires_at,
                credit_valid_days=code.credit_valid_days,
                max_redemptions=code.max_redemptions,
                redemptions_count=0,
                disabled_at=code.disabled_at,
                created_at=code.created_at,
                created_by=created_by,
            )
            .returning(t.promo_codes.c.id)
        ).first()
        return inserted is not None

    def get(self, promo_id: str) -> PromoCode | None:
        row = self.conn.execute(
            sa.select(t.promo_codes).where(t.promo_codes.c.id == promo_id)
        ).first()
        return None if row is None else promo_code_from_row(row)

    def find(self, code: str) -> PromoCode | None:
        """The code with this normal form."""
        row = self.conn.execute(
            sa.select(t.promo_codes).where(t.promo_codes.c.code == code)
        ).first()
        return None if row is None else promo_code_from_row(row)

    def set_disabled(self, promo_id: str, at: datetime | None) -> None:
        p = t.promo_codes
        if at is None:
            self.conn.execute(p.update().where(p.c.id == promo_id).values(disabled_at=None))
        else:
            self.conn.execute(
                p.update()
                .where(p.c.id == promo_id, p.c.disabled_at.is_(None))
                .values(disabled_at=at)
            )

    def claim(self, promo_id: str, at: datetime) -> bool:
        p = t.promo_codes
        result = self.conn.execute(
            p.update()
            .where(
                p.c.id == promo_id,
                p.c.redemptions_count < p.c.max_redemptions,
                p.c.disabled_at.is_(None),
                p.c.valid_from <= at,
                sa.or_(p.c.redeem_by.is_(None), p.c.redeem_by > at),
                sa.or_(p.c.credit_expires_at.is_(None), p.c.credit_expires_at > at),
            )
            .values(redemptions_count=p.c.redemptions_count + 1)
        )
        return result.rowcount == 1

    def record_redemption(
        self,
        redemption_id: str,
        promo_id: str,
        team_id: str,
        grant_id: str,
        user_id: str,
        at: datetime,
    ) -> bool:
        inserted = self.conn.execute(
            insert_ignoring_conflicts(self.conn, t.promo_redemptions)
            .values(
                id=redemption_id,
                promo_code_id=promo_id,
                team_id=team_id,
                grant_id=grant_id,
                redeemed_by=user_id,
                redeemed_at=at,
            )
            .returning(t.promo_redemptions.c.id)
        ).first()
        return inserted is not None

    def redeemed_by_team(self, promo_id: str, team_id: str) -> bool:
        r = t.promo_redemptions
        found = self.conn.execute(
            sa.select(r.c.id).where(r.c.promo_code_id == promo_id, r.c.team_id == team_id)
        ).first()
        return found is not None
