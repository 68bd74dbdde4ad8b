"""Provider payments become credit here, exactly once.

Webhooks, status polls, off-session charges and reconciliation all report what
the provider says about a payment as a :class:`PaymentOutcome`, and all of them go
through :func:`apply_outcome`. In one transaction, under the team's lock, it checks
that the payment matches what was bought (:func:`domain.payments.refusal`: a payment
that does not is never granted, but written to ``payment_reviews``), inserts the
``payments`` row (UNIQUE per provider payment: the once-only guard) and, only
when that row is new, issues the prepaid grant of the amount bought, adds it to
``lifetime_paid`` (the tier follows) and switches a first-time payer to
pay-as-you-go. A webhook's event id is recorded in the same transaction, so an
event is processed once. States only move forward (:func:`domain.payments.forward`),
and a failed purchase stays failed.

The reconciliation job also closes purchases still pending past their time
(``CREDITLEDGER_PURCHASE_PENDING_TTL_HOURS``): the provider's checkout is closed
first, so it can not be paid any more, then the purchase fails.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from creditledger.domain import ledger
from creditledger.domain.accounts import after_payment
from creditledger.domain.errors import CreditLedgerError, NotFound, PaymentNotYetKnown
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.invoices import Invoice
from creditledger.domain.money import format_amount
from creditledger.domain.payments import (
    Bought,
    Payment,
    PaymentEvent,
    PaymentOutcome,
    PaymentPurpose,
    PaymentReview,
    PaymentStatus,
    Refusal,
    forward,
    refusal,
)
from creditledger.domain.purchases import Purchase, expired_reason
from creditledger.domain.recharge import AutoRecharge, Recharge, RechargeStatus
from creditledger.services import invoice_payments, notices
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.ports import UnitOfWork

log = logging.getLogger(__name__)

RECONCILE_WINDOW = timedelta(days=3)
EXPIRY_SCAN_LIMIT = 500
NOT_YET_KNOWN = "This payment is not known yet; deliver it again later."


class Applied(enum.StrEnum):
    GRANTED = "granted"
    """A new payment: credit was granted."""
    RECORDED = "recorded"
    """A state change or a payment already granted."""
    DUPLICATE = "duplicate"
    """A webhook event processed before."""
    IGNORED = "ignored"
    """Nothing of ours to act on."""
    REFUSED = "refused"
    """It does not match what was bought: nothing granted, kept for review."""


@dataclass(frozen=True, slots=True)
class _Owner:
    """What a payment belongs to: a purchase, a recharge or an invoice of one team."""

    team_id: str
    purchase: Purchase | None
    recharge: Recharge | None
    payment: Payment | None
    invoice: Invoice | None = None

    @property
    def bought(self) -> Bought:
        if self.purchase is not None:
            return self.purchase.bought()
        if self.invoice is not None:
            return invoice_payments.bought(self.invoice)
        assert self.recharge is not None
        return Bought(self.recharge.amount, PaymentStatus(self.recharge.status.value))


def apply_outcome(
    ctx: Context, outcome: PaymentOutcome, event: PaymentEvent | None = None
) -> Applied:
    """Record what the provider says about one payment; grant it if it is new, paid and
    exactly what was bought; refuse and keep it for review if it is paid but not that."""
    provider = ctx.payments.name
    with ctx.uow() as uow:
        owner = _find_owner(uow, provider, outcome)
        if owner is not None:
            uow.teams.lock(owner.team_id)
            owner = _find_owner(uow, provider, outcome)  # again, now under the lock
        now = ctx.clock.now()
        if event is not None and not uow.payments.record_event(
            provider, event.event_id, event.type, now
        ):
            return Applied.DUPLICATE
        if owner is None:
            applied = _apply_unowned(uow, provider, outcome, event, now)
        else:
            applied = _apply(uow, ctx, owner, outcome, event, now)
        uow.commit()
    return applied


def handle_webhook(ctx: Context, provider: str, body: bytes, headers: Mapping[str, str]) -> Applied:
    """A provider's webhook: verify the signature on the raw body, then apply it once."""
    if provider != ctx.payments.name:
        raise NotFound(f"This service does not take payments through {provider}.")
    event = ctx.payments.verify_webhook(body, headers)
    if event.outcome is None:
        return Applied.IGNORED
    return apply_outcome(ctx, event.outcome, event)


def reconcile_payments(ctx: Context) -> int:
    """The periodic job: grant the recent succeeded payments a lost webhook never
    reported, then close the purchases left pending past their time. How many of both."""
    since = ctx.clock.now() - RECONCILE_WINDOW
    granted = 0
    for outcome in ctx.payments.recent_payments(since):
        if apply_outcome(ctx, outcome) is Applied.GRANTED:
            granted += 1
    return granted + expire_purchases(ctx)


def expire_purchases(ctx: Context) -> int:
    """Fail the purchases still pending after ``CREDITLEDGER_PURCHASE_PENDING_TTL_HOURS``,
    once the provider has closed their checkout; a checkout that turns out to have been
    paid is applied as any payment instead. How many failed."""
    ttl = timedelta(hours=ctx.settings.purchase_pending_ttl_hours)
    with ctx.uow(write=False) as uow:
        stale = uow.payments.pending_purchases_before(ctx.clock.now() - ttl, EXPIRY_SCAN_LIMIT)
    expired = 0
    for purchase in stale:
        try:
            expired += _expire(ctx, purchase, ttl)
        except CreditLedgerError as exc:
            log.warning("purchase %s not expired yet: %s", purchase.id, exc.message)
    return expired


def _expire(ctx: Context, purchase: Purchase, ttl: timedelta) -> bool:
    if purchase.checkout_session_id is not None:
        settled = ctx.payments.expire_checkout(purchase.checkout_session_id)
        if settled is not None:
            apply_outcome(ctx, settled)
    with ctx.uow() as uow:
        uow.teams.lock(purchase.team_id)
        current = uow.payments.purchase(purchase.id)
        if current is None or not current.expired(ctx.clock.now(), ttl):
            return False  # paid or failed meanwhile
        uow.payments.set_purchase_status(
            purchase.id, PaymentStatus.FAILED, None, expired_reason(ttl), ctx.clock.now()
        )
        uow.commit()
    return True


def _find_owner(uow: UnitOfWork, provider: str, outcome: PaymentOutcome) -> _Owner | None:
    payment = None
    if outcome.provider_payment_id is not None:
        payment = uow.payments.payment(provider, outcome.provider_payment_id)
    purchase_id, recharge_id, invoice_id = None, None, None
    if payment is not None:
        purchase_id, recharge_id = payment.purchase_id, payment.recharge_id
        invoice_id = payment.invoice_id
    elif outcome.purpose is PaymentPurpose.PURCHASE:
        purchase_id = outcome.reference
    elif outcome.purpose is PaymentPurpose.AUTO_RECHARGE:
        recharge_id = outcome.reference
    elif outcome.purpose is PaymentPurpose.INVOICE:
        invoice_id = outcome.reference
    purchase = uow.payments.purchase(purchase_id) if purchase_id else None
    recharge = uow.recharges.get(recharge_id) if recharge_id else None
    invoice = uow.invoices.by_id(invoice_id) if invoice_id else None
    owner = purchase or recharge or invoice
    if owner is None:
        return None
    return _Owner(owner.team_id, purchase, recharge, payment, invoice)


def _apply_unowned(
    uow: UnitOfWork,
    provider: str,
    outcome: PaymentOutcome,
    event: PaymentEvent | None,
    now: datetime,
) -> Applied:
    """A payment that names nothing of ours: a success is refused and kept for review;
    a refund or dispute waits for its payment; a decline moved no money."""
    if outcome.status in (PaymentStatus.PENDING, PaymentStatus.FAILED):
        return Applied.IGNORED
    if outcome.status is PaymentStatus.SUCCEEDED:
        return _refuse(uow, provider, Refusal.UNKNOWN_REFERENCE, outcome, None, event, now)
    return _after_unknown_payment(uow, provider, outcome, None, event, now)


def _after_unknown_payment(
    uow: UnitOfWork,
    provider: str,
    outcome: PaymentOutcome,
    owner: _Owner | None,
    event: PaymentEvent | None,
    now: datetime,
) -> Applied:
    """A refund or dispute of a payment not granted: if that payment was refused, this
    is kept for review with it; otherwise it came early and is to be delivered again."""
    ref = outcome.provider_payment_id
    if ref is not None and uow.payments.under_review(provider, ref):
        return _refuse(uow, provider, Refusal.NOT_GRANTED, outcome, owner, event, now)
    # Arrived before the payment itself: the provider will deliver it again.
    raise PaymentNotYetKnown(NOT_YET_KNOWN)


def _refuse(
    uow: UnitOfWork,
    provider: str,
    reason: Refusal,
    outcome: PaymentOutcome,
    owner: _Owner | None,
    event: PaymentEvent | None,
    now: datetime,
) -> Applied:
    review = PaymentReview(
        provider=provider,
        reason=reason,
        amount_claimed=outcome.amount,
        amount_expected=owner.bought.amount if owner is not None else None,
        provider_payment_id=outcome.provider_payment_id,
        purpose=outcome.purpose,
        reference=outcome.reference,
        team_id=owner.team_id if owner is not None else None,
        event_id=event.event_id if event is not None else None,
    )
    if uow.payments.add_review(review, uow.new_id("prv"), now):
        log.warning(
            "%s payment %s for %s refused (%s): %s dollars claimed, %s expected",
            provider,
            outcome.provider_payment_id,
            outcome.reference,
            reason.value,
            format_amount(outcome.amount),
            "nothing" if owner is None else format_amount(owner.bought.amount),
        )
    return Applied.REFUSED


def _apply(
    uow: UnitOfWork,
    ctx: Context,
    owner: _Owner,
    outcome: PaymentOutcome,
    event: PaymentEvent | None,
    now: datetime,
) -> Applied:
    provider = ctx.payments.name
    if outcome.status is PaymentStatus.PENDING:
        return Applied.IGNORED
    if outcome.status is PaymentStatus.FAILED:
        _record_failure(uow, ctx, owner, outcome, now)
        return Applied.RECORDED
    applied = Applied.RECORDED
    payment = owner.payment
    if payment is None:
        if outcome.status is not PaymentStatus.SUCCEEDED:
            return _after_unknown_payment(uow, provider, outcome, owner, event, now)
        refused = refusal(outcome, owner.bought)
        if refused is not None:
            return _refuse(uow, provider, refused, outcome, owner, event, now)
        payment = _grant_once(uow, ctx, provider, owner, outcome, now)
        if payment is None:
            return Applied.RECORDED
        applied = Applied.GRANTED
    elif outcome.status is PaymentStatus.SUCCEEDED and outcome.amount != payment.amount:
        return _refuse(uow, provider, Refusal.AMOUNT_MISMATCH, outcome, owner, event, now)
    _move_forward(uow, owner, payment, outcome, now)
    if outcome.customer_ref is not None:
        uow.payments.save_method(
            owner.team_id, ctx.payments.name, outcome.customer_ref, outcome.payment_method_ref, now
        )
    return applied


def _grant_once(
    uow: UnitOfWork,
    ctx: Context,
    provider: str,
    owner: _Owner,
    outcome: PaymentOutcome,
    now: datetime,
) -> Payment | None:
    """Insert the payment; only if it is new, grant it: exactly the amount bought (which
    :func:`refusal` checked it received). None when it was known already."""
    assert outcome.provider_payment_id is not None
    amount = owner.bought.amount
    if owner.invoice is not None:
        return _settle_invoice_once(
            uow, ctx, provider, owner.invoice, outcome.provider_payment_id, now
        )
    purpose = PaymentPurpose.PURCHASE if owner.purchase else PaymentPurpose.AUTO_RECHARGE
    payment = Payment(
        id=uow.new_id("pay"),
        provider=provider,
        provider_payment_id=outcome.provider_payment_id,
        team_id=owner.team_id,
        purpose=purpose,
        purchase_id=owner.purchase.id if owner.purchase else None,
        recharge_id=owner.recharge.id if owner.recharge else None,
        amount=amount,
        refunded=0,
        refund_written_off=0,
        status=PaymentStatus.SUCCEEDED,
        grant_id=None,
    )
    if not uow.payments.add_payment(payment, now):
        return None
    source = GrantSource.PURCHASE if owner.purchase else GrantSource.AUTO_RECHARGE
    what = "Purchase" if owner.purchase else "Auto-recharge"
    grant = issue_grant(
        uow,
        ctx,
        owner.team_id,
        NewGrant(GrantKind.PREPAID, source, amount),
        f"{what} of {format_amount(amount)} dollars",
        outcome.provider_payment_id,
    )
    uow.payments.set_payment_grant(payment.id, grant.id)
    team = uow.teams.get(owner.team_id)
    assert team is not None
    paid = after_payment(team, amount)
    if paid.billing_mode is not team.billing_mode:
        uow.teams.set_billing(team.id, paid.billing_mode, team.tier_level_override)
    uow.teams.add_lifetime_paid(team.id, amount)
    return replace(payment, grant_id=grant.id)


def _settle_invoice_once(
    uow: UnitOfWork,
    ctx: Context,
    provider: str,
    invoice: Invoice,
    provider_payment_id: str,
    now: datetime,
) -> Payment | None:
    """Insert the invoice's payment; only if it is new, the invoice is paid."""
    payment = Payment(
        id=uow.new_id("pay"),
        provider=provider,
        provider_payment_id=provider_payment_id,
        team_id=invoice.team_id,
        purpose=PaymentPurpose.INVOICE,
        purchase_id=None,
        recharge_id=None,
        amount=invoice.total,
        refunded=0,
        refund_written_off=0,
        status=PaymentStatus.SUCCEEDED,
        grant_id=None,
        invoice_id=invoice.id,
    )
    if not uow.payments.add_payment(payment, now):
        return None
    invoice_payments.settle(uow, ctx, invoice, provider_payment_id, now)
    return payment


def _move_forward(
    uow: UnitOfWork, owner: _Owner, payment: Payment, outcome: PaymentOutcome, now: datetime
) -> None:
    status = forward(payment.status, outcome.status)
    refunded = max(payment.refunded, min(outcome.refunded, payment.amount))
    written_off = payment.refund_written_off
    if refunded > written_off and payment.grant_id is not None:
        grant = uow.grants.get(owner.team_id, payment.grant_id)
        assert grant is not None
        take = min(grant.remaining, refunded - written_off)
        if take:
            tx = ledger.refund_payment(
                grant, take, now, "Payment refunded", payment.provider_payment_id
            )
            uow.ledger.post(tx, uow.new_id("txn"), now)
            written_off += take
    if (status, refunded, written_off) != (
        payment.status,
        payment.refunded,
        payment.refund_written_off,
    ):
        uow.payments.update_payment(payment.id, status, refunded, written_off, now)
    if owner.purchase is not None:
        new = owner.purchase.after(status)
        if new is not owner.purchase.status:
            uow.payments.set_purchase_status(
                owner.purchase.id, new, payment.provider_payment_id, None, now
            )
    if owner.recharge is not None and owner.recharge.status is not RechargeStatus.SUCCEEDED:
        uow.recharges.set_status(
            owner.recharge.id, RechargeStatus.SUCCEEDED, payment.provider_payment_id, None, now
        )


def _record_failure(
    uow: UnitOfWork, ctx: Context, owner: _Owner, outcome: PaymentOutcome, now: datetime
) -> None:
    """A decline or an expiry: a pending purchase fails, for good; a recharge fails and
    turns auto-recharge off with the reason."""
    reason = outcome.failure_reason or "The payment failed."
    if owner.payment is not None:
        return
    purchase = owner.purchase
    if purchase is not None and purchase.after(PaymentStatus.FAILED) is not purchase.status:
        uow.payments.set_purchase_status(
            purchase.id, PaymentStatus.FAILED, outcome.provider_payment_id, reason, now
        )
        notices.payment_failed(
            uow, ctx, purchase.team_id, "purchase", purchase.amount, reason, purchase.id, now
        )
    if owner.invoice is not None:
        invoice_payments.record_failure(
            uow, ctx, owner.invoice, reason, outcome.provider_payment_id, now
        )
    recharge = owner.recharge
    if recharge is not None and recharge.status is RechargeStatus.PENDING:
        uow.recharges.set_status(
            recharge.id, RechargeStatus.FAILED, outcome.provider_payment_id, reason, now
        )
        notices.payment_failed(
            uow, ctx, recharge.team_id, "recharge", recharge.amount, reason, recharge.id, now
        )
        disable_auto_recharge(uow, ctx, recharge.team_id, f"A recharge was declined: {reason}", now)


def disable_auto_recharge(
    uow: UnitOfWork, ctx: Context, team_id: str, reason: str, now: datetime
) -> None:
    """Turn the team's auto-recharge off with ``reason`` (and tell the team)."""
    current = uow.recharges.settings(team_id)
    if current is not None and current.enabled:
        off = AutoRecharge(
            enabled=False,
            threshold=current.threshold,
            restore_to=current.restore_to,
            disabled_reason=reason,
        )
        uow.recharges.save_settings(team_id, off, now)
        notices.notify(uow, ctx, team_id, "auto_recharge.disabled", {"reason": reason}, now)


def settle_offline_purchase(ctx: Context, team_id: str, amount: int, reference: str) -> str:
    """A purchase paid outside any checkout (demo data, migrations of old balances):
    recorded as a settled payment, so prepaid credit still comes only from payments.
    Returns the id of the prepaid grant."""
    with ctx.uow() as uow:
        now = ctx.clock.now()
        purchase = Purchase(
            id=uow.new_id("pur"),
            team_id=team_id,
            amount=amount,
            status=PaymentStatus.PENDING,
            created_at=now,
        )
        uow.payments.add_purchase(purchase, ctx.payments.name)
        uow.commit()
    payment_ref = f"{reference}_{purchase.id}"
    apply_outcome(
        ctx,
        PaymentOutcome(
            status=PaymentStatus.SUCCEEDED,
            provider_payment_id=payment_ref,
            purpose=PaymentPurpose.PURCHASE,
            reference=purchase.id,
            amount=amount,
        ),
    )
    with ctx.uow(write=False) as uow:
        payment = uow.payments.payment(ctx.payments.name, payment_ref)
    assert payment is not None and payment.grant_id is not None
    return payment.grant_id
