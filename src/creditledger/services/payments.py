"""Provider payments become credit here, exactly once (SPEC §6, §8).

Webhooks, status polls and reconciliation all report what the provider says
about a payment as a :class:`PaymentOutcome`, and all of them go through
:func:`apply_outcome`. In one transaction, under the team's lock, it inserts the
``payments`` row (UNIQUE per provider payment: the once-only guard) and, only
when that row is new, issues the prepaid grant, adds to ``lifetime_paid`` (the
tier follows) and switches a first-time payer to pay-as-you-go. A webhook's
event id is recorded in the same transaction, so an event is processed once.
States only move forward (:func:`domain.payments.forward`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from creditledger.domain import ledger
from creditledger.domain.accounts import BillingMode
from creditledger.domain.errors import NotFound, PaymentNotYetKnown
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.money import format_amount
from creditledger.domain.payments import (
    Payment,
    PaymentEvent,
    PaymentOutcome,
    PaymentPurpose,
    PaymentStatus,
    forward,
)
from creditledger.domain.purchases import Purchase
from creditledger.domain.recharge import AutoRecharge, Recharge, RechargeStatus
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.ports import UnitOfWork

RECONCILE_WINDOW = timedelta(days=3)


class Applied(enum.StrEnum):
    GRANTED = "granted"
    """A new payment: credit was granted."""
    RECORDED = "recorded"
    """A state change or a payment already granted."""
    DUPLICATE = "duplicate"
    """A webhook event processed before."""
    IGNORED = "ignored"
    """Nothing of ours to act on."""


@dataclass(frozen=True, slots=True)
class _Owner:
    """What a payment belongs to: a purchase or a recharge of one team."""

    team_id: str
    purchase: Purchase | None
    recharge: Recharge | None
    payment: Payment | None


def apply_outcome(
    ctx: Context, outcome: PaymentOutcome, event: PaymentEvent | None = None
) -> Applied:
    """Record what the provider says about one payment; grant it if it is new and paid."""
    provider = ctx.payments.name
    with ctx.uow() as uow:
        owner = _find_owner(uow, provider, outcome)
        if owner is None:
            if outcome.status in (PaymentStatus.DISPUTED, PaymentStatus.REFUNDED):
                # Arrived before the payment itself: the provider will deliver it again.
                raise PaymentNotYetKnown("This payment is not known yet; deliver it again later.")
            return Applied.IGNORED
        uow.teams.lock(owner.team_id)
        now = ctx.clock.now()
        if event is not None and not uow.payments.record_event(
            provider, event.event_id, event.type, now
        ):
            return Applied.DUPLICATE
        owner = _find_owner(uow, provider, outcome)  # again, now under the lock
        assert owner is not None
        applied = _apply(uow, ctx, owner, outcome, now)
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
    """Grant the recent succeeded payments a lost webhook never reported; how many."""
    since = ctx.clock.now() - RECONCILE_WINDOW
    granted = 0
    for outcome in ctx.payments.recent_payments(since):
        if apply_outcome(ctx, outcome) is Applied.GRANTED:
            granted += 1
    return granted


def _find_owner(uow: UnitOfWork, provider: str, outcome: PaymentOutcome) -> _Owner | None:
    payment = None
    if outcome.provider_payment_id is not None:
        payment = uow.payments.payment(provider, outcome.provider_payment_id)
    purchase_id, recharge_id = None, None
    if payment is not None:
        purchase_id, recharge_id = payment.purchase_id, payment.recharge_id
    elif outcome.purpose is PaymentPurpose.PURCHASE:
        purchase_id = outcome.reference
    elif outcome.purpose is PaymentPurpose.AUTO_RECHARGE:
        recharge_id = outcome.reference
    purchase = uow.payments.purchase(purchase_id) if purchase_id else None
    recharge = uow.recharges.get(recharge_id) if recharge_id else None
    owner = purchase or recharge
    if owner is None:
        return None
    return _Owner(owner.team_id, purchase, recharge, payment)


def _apply(
    uow: UnitOfWork, ctx: Context, owner: _Owner, outcome: PaymentOutcome, now: datetime
) -> Applied:
    if outcome.status is PaymentStatus.PENDING:
        return Applied.IGNORED
    if outcome.status is PaymentStatus.FAILED:
        _record_failure(uow, owner, outcome, now)
        return Applied.RECORDED
    applied = Applied.RECORDED
    payment = owner.payment
    if payment is None:
        if outcome.status is not PaymentStatus.SUCCEEDED:
            raise PaymentNotYetKnown("This payment is not known yet; deliver it again later.")
        payment = _grant_once(uow, ctx, ctx.payments.name, owner, outcome, now)
        if payment is None:
            return Applied.RECORDED
        applied = Applied.GRANTED
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
    """Insert the payment; only if it is new, grant it. None when it was known already."""
    assert outcome.provider_payment_id is not None
    purpose = PaymentPurpose.PURCHASE if owner.purchase else PaymentPurpose.AUTO_RECHARGE
    payment = Payment(
        id=uow.new_id("pay"),
        provider=provider,
        provider_payment_id=outcome.provider_payment_id,
        team_id=owner.team_id,
        purpose=purpose,
        purchase_id=owner.purchase.id if owner.purchase else None,
        recharge_id=owner.recharge.id if owner.recharge else None,
        amount=outcome.amount,
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
        NewGrant(GrantKind.PREPAID, source, outcome.amount),
        f"{what} of {format_amount(outcome.amount)} dollars",
        outcome.provider_payment_id,
    )
    uow.payments.set_payment_grant(payment.id, grant.id)
    team = uow.teams.get(owner.team_id)
    assert team is not None
    if team.lifetime_paid == 0 and team.billing_mode is BillingMode.PREPAID:
        uow.teams.set_billing(team.id, BillingMode.PAY_AS_YOU_GO, team.tier_level_override)
    uow.teams.add_lifetime_paid(team.id, outcome.amount)
    return replace(payment, grant_id=grant.id)


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
        new = forward(owner.purchase.status, status)
        if new is not owner.purchase.status:
            uow.payments.set_purchase_status(
                owner.purchase.id, new, payment.provider_payment_id, None, now
            )
    if owner.recharge is not None and owner.recharge.status is not RechargeStatus.SUCCEEDED:
        uow.recharges.set_status(
            owner.recharge.id, RechargeStatus.SUCCEEDED, payment.provider_payment_id, None, now
        )


def _record_failure(uow: UnitOfWork, owner: _Owner, outcome: PaymentOutcome, now: datetime) -> None:
    """A decline: the purchase fails (until another card succeeds); a recharge fails and
    turns auto-recharge off with the reason."""
    reason = outcome.failure_reason or "The payment failed."
    if owner.payment is not None:
        return
    purchase = owner.purchase
    if (
        purchase is not None
        and forward(purchase.status, PaymentStatus.FAILED) is not purchase.status
    ):
        uow.payments.set_purchase_status(
            purchase.id, PaymentStatus.FAILED, outcome.provider_payment_id, reason, now
        )
    recharge = owner.recharge
    if recharge is not None and recharge.status is RechargeStatus.PENDING:
        uow.recharges.set_status(
            recharge.id, RechargeStatus.FAILED, outcome.provider_payment_id, reason, now
        )
        disable_auto_recharge(uow, recharge.team_id, f"A recharge was declined: {reason}", now)


def disable_auto_recharge(uow: UnitOfWork, team_id: str, reason: str, now: datetime) -> None:
    current = uow.recharges.settings(team_id)
    if current is not None and current.enabled:
        off = AutoRecharge(False, current.threshold, current.restore_to, reason)
        uow.recharges.save_settings(team_id, off, now)


def settle_offline_purchase(ctx: Context, team_id: str, amount: int, reference: str) -> str:
    """A purchase paid outside any checkout (demo data, migrations of old balances):
    recorded as a settled payment, so prepaid credit still comes only from payments.
    Returns the id of the prepaid grant."""
    with ctx.uow() as uow:
        now = ctx.clock.now()
        purchase = Purchase(
            uow.new_id("pur"),
            team_id,
            amount,
            PaymentStatus.PENDING,
            None,
            None,
            None,
            None,
            now,
        )
        uow.payments.add_purchase(purchase, ctx.payments.name)
        uow.commit()
    payment_ref = f"{reference}_{purchase.id}"
    apply_outcome(
        ctx,
        PaymentOutcome(
            PaymentStatus.SUCCEEDED, payment_ref, PaymentPurpose.PURCHASE, purchase.id, amount
        ),
    )
    with ctx.uow(write=False) as uow:
        payment = uow.payments.payment(ctx.payments.name, payment_ref)
    assert payment is not None and payment.grant_id is not None
    return payment.grant_id
