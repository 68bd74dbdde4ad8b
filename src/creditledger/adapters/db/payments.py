"""SQL repositories of purchases, payments, payment reviews, webhook events and auto-recharge.

Like every repository, none of them commits. The once-only guards are
constraints, written with ``INSERT … ON CONFLICT DO NOTHING RETURNING`` so a
duplicate is an answer (``False``), not an error that would poison the
transaction. (RETURNING, because psycopg reports a rowcount of -1 for inserts.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.repositories import insert_ignoring_conflicts, usable_at
from creditledger.domain.money import format_amount
from creditledger.domain.payments import (
    CheckoutSession,
    Payment,
    PaymentPurpose,
    PaymentReview,
    PaymentStatus,
    SavedPaymentMethod,
)
from creditledger.domain.purchases import Purchase
from creditledger.domain.recharge import AutoRecharge, Recharge, RechargeStatus


def _purchase(row: Any) -> Purchase:
    return Purchase(
        id=row.id,
        team_id=row.team_id,
        amount=row.amount_nanos,
        status=PaymentStatus(row.status),
        checkout_session_id=row.checkout_session_id,
        checkout_url=row.checkout_url,
        provider_payment_id=row.provider_payment_id,
        failure_reason=row.failure_reason,
        created_at=row.created_at,
    )


def _payment(row: Any) -> Payment:
    return Payment(
        id=row.id,
        provider=row.provider,
        provider_payment_id=row.provider_payment_id,
        team_id=row.team_id,
        purpose=PaymentPurpose(row.purpose),
        purchase_id=row.purchase_id,
        recharge_id=row.recharge_id,
        amount=row.amount_nanos,
        refunded=row.refunded_nanos,
        refund_written_off=row.refund_written_off_nanos,
        status=PaymentStatus(row.status),
        grant_id=row.grant_id,
        invoice_id=row.invoice_id,
    )


def _recharge(row: Any) -> Recharge:
    return Recharge(
        id=row.id,
        team_id=row.team_id,
        amount=row.amount_nanos,
        status=RechargeStatus(row.status),
        provider_payment_id=row.provider_payment_id,
        failure_reason=row.failure_reason,
        created_at=row.created_at,
    )


class SqlPayments:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add_purchase(self, purchase: Purchase, provider: str) -> None:
        self.conn.execute(
            t.purchases.insert().values(
                id=purchase.id,
                team_id=purchase.team_id,
                provider=provider,
                amount_nanos=purchase.amount,
                status=purchase.status.value,
                checkout_session_id=purchase.checkout_session_id,
                checkout_url=purchase.checkout_url,
                created_at=purchase.created_at,
                updated_at=purchase.created_at,
            )
        )

    def purchase(self, purchase_id: str) -> Purchase | None:
        row = self.conn.execute(
            sa.select(t.purchases).where(t.purchases.c.id == purchase_id)
        ).first()
        return None if row is None else _purchase(row)

    def attach_checkout(self, purchase_id: str, session: CheckoutSession, at: datetime) -> None:
        self.conn.execute(
            t.purchases.update()
            .where(t.purchases.c.id == purchase_id)
            .values(checkout_session_id=session.session_id, checkout_url=session.url, updated_at=at)
        )

    def set_purchase_status(
        self,
        purchase_id: str,
        status: PaymentStatus,
        provider_payment_id: str | None,
        failure_reason: str | None,
        at: datetime,
    ) -> None:
        _set_status(
            self.conn,
            t.purchases,
            purchase_id,
            status.value,
            provider_payment_id,
            failure_reason,
            at,
        )

    def add_payment(self, payment: Payment, at: datetime) -> bool:
        inserted = self.conn.execute(
            insert_ignoring_conflicts(self.conn, t.payments)
            .values(
                id=payment.id,
                provider=payment.provider,
                provider_payment_id=payment.provider_payment_id,
                team_id=payment.team_id,
                purpose=payment.purpose.value,
                purchase_id=payment.purchase_id,
                recharge_id=payment.recharge_id,
                invoice_id=payment.invoice_id,
                amount_nanos=payment.amount,
                refunded_nanos=payment.refunded,
                refund_written_off_nanos=payment.refund_written_off,
                status=payment.status.value,
                grant_id=payment.grant_id,
                created_at=at,
                updated_at=at,
            )
            .returning(t.payments.c.id)
        ).first()
        return inserted is not None

    def set_payment_grant(self, payment_id: str, grant_id: str) -> None:
        self.conn.execute(
            t.payments.update().where(t.payments.c.id == payment_id).values(grant_id=grant_id)
        )

    def payment(self, provider: str, provider_payment_id: str) -> Payment | None:
        row = self.conn.execute(
            sa.select(t.payments).where(
                t.payments.c.provider == provider,
                t.payments.c.provider_payment_id == provider_payment_id,
            )
        ).first()
        return None if row is None else _payment(row)

    def update_payment(
        self,
        payment_id: str,
        status: PaymentStatus,
        refunded: int,
        refund_written_off: int,
        at: datetime,
    ) -> None:
        self.conn.execute(
            t.payments.update()
            .where(t.payments.c.id == payment_id)
            .values(
                status=status.value,
                refunded_nanos=refunded,
                refund_written_off_nanos=refund_written_off,
                updated_at=at,
            )
        )

    def pending_purchases_before(self, before: datetime, limit: int) -> list[Purchase]:
        p = t.purchases
        rows = self.conn.execute(
            sa.select(p)
            .where(p.c.status == PaymentStatus.PENDING.value, p.c.created_at <= before)
            .order_by(p.c.created_at)
            .limit(limit)
        )
        return [_purchase(row) for row in rows]

    def add_review(self, review: PaymentReview, review_id: str, at: datetime) -> bool:
        inserted = self.conn.execute(
            insert_ignoring_conflicts(self.conn, t.payment_reviews)
            .values(
                id=review_id,
                provider=review.provider,
                event_id=review.event_id,
                provider_payment_id=review.provider_payment_id,
                purpose=None if review.purpose is None else review.purpose.value,
                reference=None if review.reference is None else review.reference[:255],
                team_id=review.team_id,
                amount_claimed=_claimed(review.amount_claimed),
                amount_expected_nanos=review.amount_expected,
                reason=review.reason.value,
                created_at=at,
            )
            .returning(t.payment_reviews.c.id)
        ).first()
        return inserted is not None

    def under_review(self, provider: str, provider_payment_id: str) -> bool:
        r = t.payment_reviews
        found = self.conn.execute(
            sa.select(r.c.id)
            .where(r.c.provider == provider, r.c.provider_payment_id == provider_payment_id)
            .limit(1)
        ).first()
        return found is not None

    def record_event(self, provider: str, event_id: str, type: str, at: datetime) -> bool:
        inserted = self.conn.execute(
            insert_ignoring_conflicts(self.conn, t.webhook_events)
            .values(provider=provider, event_id=event_id, type=type[:100], received_at=at)
            .returning(t.webhook_events.c.event_id)
        ).first()
        return inserted is not None

    def saved_method(self, team_id: str) -> SavedPaymentMethod | None:
        row = self.conn.execute(
            sa.select(t.payment_methods).where(t.payment_methods.c.team_id == team_id)
        ).first()
        if row is None:
            return None
        return SavedPaymentMethod(row.customer_ref, row.payment_method_ref)

    def save_method(
        self,
        team_id: str,
        provider: str,
        customer_ref: str,
        payment_method_ref: str | None,
        at: datetime,
    ) -> None:
        pm = t.payment_methods
        existing = self.saved_method(team_id)
        if existing is None:
            self.conn.execute(
                pm.insert().values(
                    team_id=team_id,
                    provider=provider,
                    customer_ref=customer_ref,
                    payment_method_ref=payment_method_ref,
                    updated_at=at,
                )
            )
            return
        self.conn.execute(
            pm.update()
            .where(pm.c.team_id == team_id)
            .values(
                provider=provider,
                customer_ref=customer_ref,
                payment_method_ref=payment_method_ref or existing.payment_method_ref,
                updated_at=at,
            )
        )


class SqlRecharges:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def settings(self, team_id: str) -> AutoRecharge | None:
        s = t.auto_recharge_settings
        row = self.conn.execute(sa.select(s).where(s.c.team_id == team_id)).first()
        if row is None:
            return None
        return AutoRecharge(
            enabled=bool(row.enabled),
            threshold=row.threshold_nanos,
            restore_to=row.restore_to_nanos,
            disabled_reason=row.disabled_reason,
        )

    def save_settings(self, team_id: str, settings: AutoRecharge, at: datetime) -> None:
        s = t.auto_recharge_settings
        values = {
            "enabled": settings.enabled,
            "threshold_nanos": settings.threshold,
            "restore_to_nanos": settings.restore_to,
            "disabled_reason": settings.disabled_reason,
            "updated_at": at,
        }
        updated = self.conn.execute(s.update().where(s.c.team_id == team_id).values(**values))
        if updated.rowcount == 0:
            self.conn.execute(s.insert().values(team_id=team_id, **values))

    def start(self, recharge: Recharge) -> bool:
        inserted = self.conn.execute(
            insert_ignoring_conflicts(self.conn, t.recharges)
            .values(
                id=recharge.id,
                team_id=recharge.team_id,
                amount_nanos=recharge.amount,
                status=recharge.status.value,
                created_at=recharge.created_at,
                updated_at=recharge.created_at,
            )
            .returning(t.recharges.c.id)
        ).first()
        return inserted is not None

    def get(self, recharge_id: str) -> Recharge | None:
        row = self.conn.execute(
            sa.select(t.recharges).where(t.recharges.c.id == recharge_id)
        ).first()
        return None if row is None else _recharge(row)

    def set_status(
        self,
        recharge_id: str,
        status: RechargeStatus,
        provider_payment_id: str | None,
        failure_reason: str | None,
        at: datetime,
    ) -> None:
        _set_status(
            self.conn,
            t.recharges,
            recharge_id,
            status.value,
            provider_payment_id,
            failure_reason,
            at,
        )

    def charged_since(self, team_id: str, since: datetime) -> int:
        r = t.recharges
        total = self.conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(r.c.amount_nanos), 0)).where(
                r.c.team_id == team_id,
                r.c.created_at >= since,
                r.c.status.in_(("pending", "succeeded")),
            )
        ).scalar_one()
        return int(total)

    def pending_created_before(self, before: datetime, limit: int) -> list[Recharge]:
        r = t.recharges
        rows = self.conn.execute(
            sa.select(r)
            .where(r.c.status == "pending", r.c.created_at < before)
            .order_by(r.c.created_at)
            .limit(limit)
        )
        return [_recharge(row) for row in rows]

    def enabled_among(self, team_ids: Sequence[str]) -> list[str]:
        s = t.auto_recharge_settings
        rows = self.conn.execute(
            sa.select(s.c.team_id).where(s.c.enabled.is_(True), s.c.team_id.in_(list(team_ids)))
        )
        return sorted(row.team_id for row in rows)

    def teams_below_threshold(self, now: datetime, limit: int) -> list[str]:
        g, s = t.grants, t.auto_recharge_settings
        usable = (
            sa.select(g.c.team_id, sa.func.sum(g.c.remaining_nanos).label("available"))
            .where(
                g.c.team_id.in_(sa.select(s.c.team_id).where(s.c.enabled.is_(True))),
                usable_at(now),
            )
            .group_by(g.c.team_id)
            .subquery()
        )
        rows = self.conn.execute(
            sa.select(s.c.team_id)
            .outerjoin(usable, usable.c.team_id == s.c.team_id)
            .where(
                s.c.enabled.is_(True),
                sa.func.coalesce(usable.c.available, 0) < s.c.threshold_nanos,
            )
            .order_by(s.c.team_id)
            .limit(limit)
        )
        return [row.team_id for row in rows]


def _claimed(nanos: int) -> str:
    """The claimed amount as decimal dollars, shortened if it does not fit its column."""
    text = format_amount(nanos)
    return text if len(text) <= 64 else f"{text[:60]}..."


def _set_status(
    conn: sa.Connection,
    table: sa.Table,
    row_id: str,
    status: str,
    provider_payment_id: str | None,
    failure_reason: str | None,
    at: datetime,
) -> None:
    """Move a purchase or a recharge to ``status``; a known provider payment id is kept."""
    values: dict[str, Any] = {"status": status, "failure_reason": failure_reason, "updated_at": at}
    if provider_payment_id is not None:
        values["provider_payment_id"] = provider_payment_id
    conn.execute(table.update().where(table.c.id == row_id).values(**values))
