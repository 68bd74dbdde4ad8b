"""Invoices in SQL: the rows, their attempts, the number sequence, and the usage each
one billed (``usage_events.invoice_id``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.repositories import insert_ignoring_conflicts
from creditledger.adapters.db.types import from_micros, to_micros
from creditledger.domain.grants import GrantKind
from creditledger.domain.invoices import (
    Attempt,
    AttemptOutcome,
    CreditsApplied,
    Invoice,
    InvoiceStatus,
    Line,
    LineKind,
    Period,
    UsageTotal,
    next_period,
    period_of,
    previous_period,
)
from creditledger.domain.ledger import EntryType

SEQUENCE = "invoices"


def _line_to_json(line: Line) -> dict[str, Any]:
    return {
        "kind": line.kind.value,
        "description": line.description,
        "amount": line.amount,
        "exact": line.exact,
        "product": line.product,
        "model": line.model,
        "quantity": line.quantity,
        "unit": line.unit,
        "late": line.late,
        "late_period_start": None
        if line.late_period is None
        else to_micros(line.late_period.start),
    }


def _line_from_json(raw: dict[str, Any]) -> Line:
    start = raw.get("late_period_start")
    late_period = None
    if start is not None:
        late_period = period_of(from_micros(int(start)))
    return Line(
        kind=LineKind(raw["kind"]),
        description=str(raw["description"]),
        amount=int(raw["amount"]),
        exact=int(raw["exact"]),
        product=raw.get("product"),
        model=raw.get("model"),
        quantity=None if raw.get("quantity") is None else int(raw["quantity"]),
        unit=raw.get("unit"),
        late=bool(raw.get("late")),
        late_period=late_period,
    )


def _invoice(row: Any, attempts: Sequence[Attempt]) -> Invoice:
    return Invoice(
        id=row.id,
        team_id=row.team_id,
        period=Period(row.period_start, row.period_end),
        status=InvoiceStatus(row.status),
        number=row.number,
        lines=tuple(_line_from_json(raw) for raw in row.lines),
        credits_applied=CreditsApplied(
            promotional=row.promotional_applied_nanos, prepaid=row.prepaid_applied_nanos
        ),
        subtotal=row.subtotal_nanos,
        total=row.total_nanos,
        exact=row.exact_nanos,
        carry=row.carry_nanos,
        attempts=tuple(attempts),
        created_at=row.created_at,
        opened_at=row.opened_at,
        paid_at=row.paid_at,
        voided_at=row.voided_at,
        void_note=row.void_note,
        next_charge_at=row.next_charge_at,
        checkout_session_id=row.checkout_session_id,
        checkout_url=row.checkout_url,
    )


def _attempt(row: Any) -> Attempt:
    return Attempt(
        number=row.number, at=row.at, outcome=AttemptOutcome(row.outcome), reason=row.reason
    )


class SqlInvoices:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    # --- reading ---------------------------------------------------------------------

    def _with_attempts(self, rows: Sequence[Any]) -> list[Invoice]:
        if not rows:
            return []
        a = t.invoice_attempts
        found: dict[str, list[Attempt]] = {row.id: [] for row in rows}
        for r in self.conn.execute(
            sa.select(a).where(a.c.invoice_id.in_(list(found))).order_by(a.c.number)
        ):
            found[r.invoice_id].append(_attempt(r))
        return [_invoice(row, found[row.id]) for row in rows]

    def get(self, team_id: str, invoice_id: str) -> Invoice | None:
        i = t.invoices
        row = self.conn.execute(
            sa.select(i).where(i.c.team_id == team_id, i.c.id == invoice_id)
        ).first()
        return None if row is None else self._with_attempts([row])[0]

    def by_id(self, invoice_id: str) -> Invoice | None:
        i = t.invoices
        row = self.conn.execute(sa.select(i).where(i.c.id == invoice_id)).first()
        return None if row is None else self._with_attempts([row])[0]

    def latest(self, team_id: str) -> Invoice | None:
        """The team's stored invoice of the latest period."""
        i = t.invoices
        row = self.conn.execute(
            sa.select(i).where(i.c.team_id == team_id).order_by(i.c.period_start.desc()).limit(1)
        ).first()
        return None if row is None else self._with_attempts([row])[0]

    def latest_of(self, team_ids: Sequence[str]) -> dict[str, Invoice]:
        """Each team's stored invoice of its latest period (teams with none left out)."""
        if not team_ids:
            return {}
        i = t.invoices
        newest = (
            sa.select(i.c.team_id, sa.func.max(i.c.period_start).label("start"))
            .where(i.c.team_id.in_(list(team_ids)))
            .group_by(i.c.team_id)
            .subquery()
        )
        rows = self.conn.execute(
            sa.select(i).join(
                newest, sa.and_(newest.c.team_id == i.c.team_id, newest.c.start == i.c.period_start)
            )
        ).all()
        return {inv.team_id: inv for inv in self._with_attempts(rows)}

    def page(
        self,
        team_id: str,
        status: InvoiceStatus | None,
        before_period: datetime | None,
        limit: int,
    ) -> list[Invoice]:
        """Stored invoices, newest period first, from before ``before_period``."""
        i = t.invoices
        query = sa.select(i).where(i.c.team_id == team_id)
        if status is not None:
            query = query.where(i.c.status == status.value)
        if before_period is not None:
            query = query.where(i.c.period_start < before_period)
        rows = self.conn.execute(query.order_by(i.c.period_start.desc()).limit(limit)).all()
        return self._with_attempts(rows)

    def has_uncollectible(self, team_id: str) -> bool:
        i = t.invoices
        return (
            self.conn.execute(
                sa.select(i.c.id)
                .where(i.c.team_id == team_id, i.c.status == InvoiceStatus.UNCOLLECTIBLE.value)
                .limit(1)
            ).first()
            is not None
        )

    def due_for_charge(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(team id, invoice id) of open invoices whose card is to be charged by ``now``."""
        i = t.invoices
        rows = self.conn.execute(
            sa.select(i.c.team_id, i.c.id)
            .where(
                i.c.next_charge_at.is_not(None),
                i.c.next_charge_at <= now,
                i.c.status == InvoiceStatus.OPEN.value,
            )
            .order_by(i.c.next_charge_at)
            .limit(limit)
        )
        return [(r.team_id, r.id) for r in rows]

    # --- usage no invoice has billed yet ----------------------------------------------

    def teams_to_open(self, period: Period, after_team: str | None, limit: int) -> list[str]:
        """Teams with usage before ``period.end`` that no invoice billed, and no invoice
        for ``period`` yet, in id order after ``after_team``."""
        e, i = t.usage_events, t.invoices
        has_invoice = (
            sa.select(i.c.id)
            .where(i.c.team_id == e.c.team_id, i.c.period_start == period.start)
            .exists()
        )
        query = (
            sa.select(e.c.team_id)
            .where(
                e.c.invoice_id.is_(None),
                e.c.uncovered_nanos > 0,
                e.c.occurred_at < period.end,
                ~has_invoice,
            )
            .group_by(e.c.team_id)
            .order_by(e.c.team_id)
            .limit(limit)
        )
        if after_team is not None:
            query = query.where(e.c.team_id > after_team)
        return [r.team_id for r in self.conn.execute(query)]

    def open_usage(self, team_id: str, around: Period) -> list[UsageTotal]:
        """What no invoice has billed yet, per (product, model, month): the month of
        ``around``, the one after and the two before are told apart; anything older is
        one line per (product, model) named after its earliest month."""
        e = t.usage_events
        return self._totals(
            e.c.team_id == team_id,
            e.c.invoice_id.is_(None),
            e.c.uncovered_nanos > 0,
            around=around,
        )

    def billed_usage(self, invoice_id: str, around: Period) -> list[UsageTotal]:
        """What the invoice billed, per (product, model, month)."""
        return self.billed_usage_of([invoice_id], around).get(invoice_id, [])

    def billed_usage_of(
        self, invoice_ids: Sequence[str], around: Period
    ) -> dict[str, list[UsageTotal]]:
        """What each invoice billed, per (product, model, month)."""
        e = t.usage_events
        found: dict[str, list[UsageTotal]] = {}
        for key, total in self._grouped(
            e.c.invoice_id, e.c.invoice_id.in_(list(invoice_ids)), around=around
        ):
            found.setdefault(key, []).append(total)
        return found

    def _totals(self, *where: Any, around: Period) -> list[UsageTotal]:
        e = t.usage_events
        return [total for _, total in self._grouped(e.c.team_id, *where, around=around)]

    def _grouped(self, key: Any, *where: Any, around: Period) -> list[tuple[str, UsageTotal]]:
        e = t.usage_events
        before = [around]
        for _ in range(2):
            before.append(previous_period(before[-1]))
        after = next_period(around)
        bucket = sa.case(
            (e.c.occurred_at >= after.start, 0),
            (e.c.occurred_at >= around.start, 1),
            (e.c.occurred_at >= before[1].start, 2),
            (e.c.occurred_at >= before[2].start, 3),
            else_=4,
        ).label("bucket")
        rows = self.conn.execute(
            sa.select(
                key.label("key"),
                e.c.product,
                e.c.model,
                bucket,
                sa.func.sum(e.c.uncovered_nanos).label("uncovered"),
                sa.func.min(e.c.occurred_at).label("first"),
                sa.func.count().label("events"),
                sa.func.count(e.c.unit).label("measured"),
                sa.func.min(e.c.unit).label("unit_min"),
                sa.func.max(e.c.unit).label("unit_max"),
                sa.func.sum(e.c.quantity).label("quantity"),
            )
            .where(*where)
            .group_by(key, e.c.product, e.c.model, bucket)
        )
        totals = []
        for r in rows:
            one_unit = r.measured == r.events and r.unit_min == r.unit_max
            totals.append(
                (
                    r.key,
                    UsageTotal(
                        product=r.product,
                        model=r.model,
                        uncovered=int(r.uncovered),
                        quantity=int(r.quantity) if one_unit else None,
                        unit=r.unit_min if one_unit else None,
                        period=period_of(r.first),
                    ),
                )
            )
        return totals

    def bill_usage(self, team_id: str, invoice_id: str, before: datetime) -> int:
        """Mark what no invoice billed yet, before ``before``, as billed by this one."""
        return self.bill_usage_of({team_id: invoice_id}, before)

    def bill_usage_of(self, invoice_ids: dict[str, str], before: datetime) -> int:
        """Mark each team's usage no invoice billed yet, before ``before``, as billed by
        its invoice (``invoice_ids``: team id → invoice id), in one statement."""
        if not invoice_ids:
            return 0
        e = t.usage_events
        result = self.conn.execute(
            e.update()
            .where(
                e.c.team_id.in_(list(invoice_ids)),
                e.c.invoice_id.is_(None),
                e.c.uncovered_nanos > 0,
                e.c.occurred_at < before,
            )
            .values(invoice_id=sa.case(invoice_ids, value=e.c.team_id))
        )
        return int(result.rowcount or 0)

    def credits_applied(self, team_id: str, period: Period) -> CreditsApplied:
        """What grants paid, by kind, of the team's usage in ``period``."""
        return self.credits_applied_of([team_id], period)[team_id]

    def credits_applied_of(
        self, team_ids: Sequence[str], period: Period
    ) -> dict[str, CreditsApplied]:
        p, tx, g = t.postings, t.ledger_transactions, t.grants
        rows = self.conn.execute(
            sa.select(p.c.team_id, g.c.kind, (-sa.func.sum(p.c.amount_nanos)).label("drawn"))
            .select_from(p.join(tx, tx.c.id == p.c.transaction_id).join(g, g.c.id == p.c.grant_id))
            .where(
                p.c.team_id.in_(list(team_ids)),
                tx.c.type.in_([EntryType.USAGE.value, EntryType.ADJUSTMENT.value]),
                tx.c.occurred_at >= period.start,
                tx.c.occurred_at < period.end,
            )
            .group_by(p.c.team_id, g.c.kind)
        )
        drawn: dict[str, dict[GrantKind, int]] = {team: {} for team in team_ids}
        for r in rows:
            drawn[r.team_id][GrantKind(r.kind)] = int(r.drawn or 0)
        return {
            team: CreditsApplied(
                promotional=kinds.get(GrantKind.PROMOTIONAL, 0),
                prepaid=kinds.get(GrantKind.PREPAID, 0),
            )
            for team, kinds in drawn.items()
        }

    # --- writing ---------------------------------------------------------------------

    def next_sequences(self, count: int) -> int:
        """Take the next ``count`` invoice numbers in the caller's transaction; the first
        of them (a rollback gives them back; concurrent openings wait on the row)."""
        s = t.invoice_sequence
        bump = (
            s.update()
            .where(s.c.name == SEQUENCE)
            .values(last_value=s.c.last_value + count)
            .returning(s.c.last_value)
        )
        row = self.conn.execute(bump).first()
        if row is None:  # a database emptied by hand: start the sequence again
            self.conn.execute(
                insert_ignoring_conflicts(self.conn, s).values(name=SEQUENCE, last_value=0)
            )
            row = self.conn.execute(bump).first()
        assert row is not None
        return int(row.last_value) - count + 1

    def add(self, invoice: Invoice, sequence: int | None, at: datetime) -> bool:
        """Insert; False when the team has an invoice for that period already."""
        return self.add_many([(invoice, sequence)], at) == 1

    def add_many(self, invoices: Sequence[tuple[Invoice, int | None]], at: datetime) -> int:
        """Insert in one statement, leaving out any whose team has an invoice for that
        period already; how many were inserted."""
        if not invoices:
            return 0
        inserted = self.conn.execute(
            insert_ignoring_conflicts(self.conn, t.invoices)
            .values([_row(invoice, sequence, at) for invoice, sequence in invoices])
            .returning(t.invoices.c.id)
        ).all()
        return len(inserted)

    def update(self, invoice: Invoice, at: datetime) -> None:
        """Write what changes after opening: status, dates, the next charge, checkout."""
        i = t.invoices
        self.conn.execute(
            i.update()
            .where(i.c.id == invoice.id)
            .values(
                status=invoice.status.value,
                paid_at=invoice.paid_at,
                voided_at=invoice.voided_at,
                void_note=invoice.void_note,
                next_charge_at=invoice.next_charge_at,
                checkout_session_id=invoice.checkout_session_id,
                checkout_url=invoice.checkout_url,
                updated_at=at,
            )
        )

    def start_attempt(self, invoice_id: str, attempt: Attempt) -> bool:
        """Insert a pending attempt; False when that number was taken by another run."""
        inserted = self.conn.execute(
            insert_ignoring_conflicts(self.conn, t.invoice_attempts)
            .values(
                invoice_id=invoice_id,
                number=attempt.number,
                at=attempt.at,
                outcome=attempt.outcome.value,
                reason=attempt.reason,
            )
            .returning(t.invoice_attempts.c.number)
        ).first()
        return inserted is not None

    def finish_attempt(
        self,
        invoice_id: str,
        number: int,
        outcome: AttemptOutcome,
        reason: str | None,
        provider_payment_id: str | None,
        at: datetime,
    ) -> None:
        a = t.invoice_attempts
        self.conn.execute(
            a.update()
            .where(a.c.invoice_id == invoice_id, a.c.number == number)
            .values(
                outcome=outcome.value,
                reason=reason,
                provider_payment_id=provider_payment_id,
                at=at,
            )
        )

    def pending_attempts_before(self, before: datetime, limit: int) -> list[tuple[str, str, int]]:
        """(team id, invoice id, attempt number) of charges still pending since ``before``:
        a process lost track of them, so they are charged again with the same key."""
        a, i = t.invoice_attempts, t.invoices
        rows = self.conn.execute(
            sa.select(i.c.team_id, a.c.invoice_id, a.c.number)
            .join(i, i.c.id == a.c.invoice_id)
            .where(a.c.outcome == AttemptOutcome.PENDING.value, a.c.at <= before)
            .order_by(a.c.at)
            .limit(limit)
        )
        return [(r.team_id, r.invoice_id, r.number) for r in rows]


def _row(invoice: Invoice, sequence: int | None, at: datetime) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "team_id": invoice.team_id,
        "period_start": invoice.period.start,
        "period_end": invoice.period.end,
        "status": invoice.status.value,
        "sequence": sequence,
        "number": invoice.number,
        "lines": [_line_to_json(line) for line in invoice.lines],
        "promotional_applied_nanos": invoice.credits_applied.promotional,
        "prepaid_applied_nanos": invoice.credits_applied.prepaid,
        "subtotal_nanos": invoice.subtotal,
        "total_nanos": invoice.total,
        "exact_nanos": invoice.exact,
        "carry_nanos": invoice.carry,
        "created_at": invoice.created_at,
        "opened_at": invoice.opened_at,
        "paid_at": invoice.paid_at,
        "voided_at": invoice.voided_at,
        "void_note": invoice.void_note,
        "next_charge_at": invoice.next_charge_at,
        "updated_at": at,
    }
