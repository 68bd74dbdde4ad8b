"""What a provider payment does to an invoice, called by :mod:`services.payments`
inside its transaction, under the team's lock.

A confirmed payment settles the invoice once (the ``payments`` row, UNIQUE per
invoice, is the guard), moves it to ``paid``, counts into lifetime paid and, when it
was the team's last uncollectible invoice, gives pay-as-you-go back. A failed charge
closes its attempt and either schedules the next one or, after the last retry, makes
the invoice uncollectible and the team prepaid-only until it pays.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from creditledger.domain import ledger
from creditledger.domain.accounts import BillingMode
from creditledger.domain.invoices import (
    AttemptOutcome,
    Invoice,
    InvoiceStatus,
    move,
    next_charge_after,
)
from creditledger.domain.money import format_amount
from creditledger.domain.notices import instant
from creditledger.domain.payments import Bought, PaymentStatus
from creditledger.services import notices
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork


def bought(invoice: Invoice) -> Bought:
    """What a payment of ``invoice`` must match: its total, while it is payable."""
    if invoice.payable:
        status = PaymentStatus.PENDING
    elif invoice.status is InvoiceStatus.PAID:
        status = PaymentStatus.SUCCEEDED
    else:
        status = PaymentStatus.FAILED  # void, or nothing to pay: closed
    return Bought(invoice.total, status)


def settle(
    uow: UnitOfWork, ctx: Context, invoice: Invoice, provider_payment_id: str, now: datetime
) -> Invoice:
    """The invoice is paid: post the payment, close the attempt, count the money."""
    was_uncollectible = invoice.status is InvoiceStatus.UNCOLLECTIBLE
    paid = replace(
        invoice, status=move(invoice.status, InvoiceStatus.PAID), paid_at=now, next_charge_at=None
    )
    uow.ledger.post(
        ledger.pay_invoice(
            invoice.team_id,
            invoice.id,
            invoice.total,
            now,
            f"Invoice {invoice.number} paid: {format_amount(invoice.total)} dollars",
            provider_payment_id,
        ),
        uow.new_id("txn"),
        now,
    )
    uow.invoices.update(paid, now)
    pending = _pending_attempt(invoice)
    if pending is not None:
        uow.invoices.finish_attempt(
            invoice.id, pending, AttemptOutcome.SUCCEEDED, None, provider_payment_id, now
        )
    uow.teams.add_lifetime_paid(invoice.team_id, invoice.total)
    if was_uncollectible:
        restore_pay_as_you_go(uow, invoice.team_id)
    notices.invoice_notice(uow, ctx, "invoice.paid", paid, now)
    return paid


def record_failure(
    uow: UnitOfWork,
    ctx: Context,
    invoice: Invoice,
    reason: str,
    provider_payment_id: str | None,
    now: datetime,
) -> Invoice:
    """A charge of ``invoice`` failed: close its pending attempt, then charge again on the
    retry schedule or, after the last retry, make it uncollectible."""
    pending = _pending_attempt(invoice)
    if pending is None:
        return invoice  # told twice (the charge's answer, then a webhook)
    uow.invoices.finish_attempt(
        invoice.id, pending, AttemptOutcome.FAILED, reason, provider_payment_id, now
    )
    notices.payment_failed(
        uow, ctx, invoice.team_id, "invoice", invoice.total, reason, invoice.id, now
    )
    after = after_failed_attempt(uow, ctx, invoice, pending, now)
    notices.invoice_notice(
        uow,
        ctx,
        "invoice.payment_failed",
        after,
        now,
        reason=reason,
        status=after.status.value,
        next_charge_at=None if after.next_charge_at is None else instant(after.next_charge_at),
    )
    return after


def after_failed_attempt(
    uow: UnitOfWork, ctx: Context, invoice: Invoice, number: int, now: datetime
) -> Invoice:
    """Schedule the next charge after attempt ``number`` failed (it is recorded)."""
    if invoice.status is not InvoiceStatus.OPEN:
        return invoice  # paid by hand after a decline: nothing more to schedule
    failed = [a for a in invoice.attempts if a.outcome is AttemptOutcome.FAILED]
    first = failed[0].at if failed else now
    failures = len(failed) + 1
    next_at = next_charge_after(first, failures, ctx.settings.invoice_retry_schedule)
    if next_at is not None:
        updated = replace(invoice, next_charge_at=next_at)
    else:
        updated = replace(
            invoice, status=move(invoice.status, InvoiceStatus.UNCOLLECTIBLE), next_charge_at=None
        )
        team = uow.teams.get(invoice.team_id)
        if team is not None and team.billing_mode is BillingMode.PAY_AS_YOU_GO:
            uow.teams.set_billing(team.id, BillingMode.PREPAID, team.tier_level_override)
    uow.invoices.update(updated, now)
    return updated


def restore_pay_as_you_go(uow: UnitOfWork, team_id: str) -> None:
    """A team that dropped to prepaid-only over an uncollectible invoice gets
    pay-as-you-go back once none is left."""
    if uow.invoices.has_uncollectible(team_id):
        return
    team = uow.teams.get(team_id)
    if team is not None and team.billing_mode is BillingMode.PREPAID:
        uow.teams.set_billing(team.id, BillingMode.PAY_AS_YOU_GO, team.tier_level_override)


def _pending_attempt(invoice: Invoice) -> int | None:
    for attempt in reversed(invoice.attempts):
        if attempt.outcome is AttemptOutcome.PENDING:
            return attempt.number
    return None
