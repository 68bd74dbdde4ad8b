"""Buying prepaid credit through the payment provider (docs/api.md, Purchases).

Starting a purchase never holds a database transaction across the provider call:
the Idempotency-Key is claimed first (so 20 simultaneous requests with one key
make one checkout), the pending purchase is committed, the provider makes the
checkout page (with an idempotency key derived from the purchase id), and the
answer is stored with the key. Credit comes only later, from
:func:`services.payments.apply_outcome`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from creditledger.domain.accounts import Principal
from creditledger.domain.audit import AuditAction
from creditledger.domain.errors import CreditLedgerError, NotFound
from creditledger.domain.money import Nanos, parse_amount
from creditledger.domain.payments import CheckoutRequest, CheckoutSession, PaymentStatus
from creditledger.domain.purchases import Purchase
from creditledger.services import audit
from creditledger.services.access import Need, check_team_access
from creditledger.services.context import Context
from creditledger.services.idempotency import (
    IdempotentRequest,
    check_key,
    claim_key,
    finish_claimed,
    release_key,
)
from creditledger.services.payments import apply_outcome
from creditledger.services.ports import SandboxCheckout, UnitOfWork

log = logging.getLogger(__name__)

PURCHASE_NOT_FOUND = "No purchase with this id in this team."


def start_purchase(
    ctx: Context,
    principal: Principal,
    team_id: str,
    amount_text: object,
    request: IdempotentRequest,
    render: Callable[[Purchase], tuple[int, str]],
) -> tuple[int, str]:
    """A pending purchase with its checkout page; the same key replays the first answer.

    ``amount_text`` is decimal dollars as sent: whole cents between
    ``CREDITLEDGER_PURCHASE_MIN`` and ``CREDITLEDGER_PURCHASE_MAX``. The request's
    fingerprint is the amount read, so ``"10"`` and ``"10.00"`` are the same purchase.
    """
    amount = parse_amount(
        amount_text,
        minimum=ctx.settings.purchase_min_nanos,
        maximum=ctx.settings.purchase_max_nanos,
        whole_cents=True,
    )
    key = check_key(request.key)
    caller = request.caller
    replay = claim_key(ctx, caller, key, request.fingerprint(str(amount).encode()))
    if replay is not None:
        return replay
    try:
        purchase, customer_ref = _open_purchase(ctx, principal, team_id, amount)
    except CreditLedgerError:
        release_key(ctx, caller, key)
        raise
    try:
        session = ctx.payments.create_checkout(
            CheckoutRequest(
                reference=purchase.id,
                team_id=team_id,
                amount=amount,
                customer_ref=customer_ref,
                idempotency_key=f"checkout:{purchase.id}",
            )
        )
    except CreditLedgerError as exc:
        _abandon(ctx, purchase, exc.message)
        release_key(ctx, caller, key)
        raise

    def effect(uow: UnitOfWork) -> Purchase:
        uow.payments.attach_checkout(purchase.id, session, ctx.clock.now())
        return _with_checkout(purchase, session)

    return finish_claimed(ctx, caller, key, effect, render)


def get_purchase(ctx: Context, principal: Principal, team_id: str, purchase_id: str) -> Purchase:
    """The purchase; while it is pending, the provider is asked (a status poll)."""
    purchase = _read(ctx, principal, team_id, purchase_id)
    audit.record_read(
        ctx, principal, AuditAction.PURCHASE_READ, team_id, {"purchase_id": purchase.id}
    )
    if purchase.status is not PaymentStatus.PENDING or purchase.checkout_session_id is None:
        return purchase
    try:
        outcome = ctx.payments.checkout_outcome(purchase.checkout_session_id)
    except CreditLedgerError as exc:
        log.warning("status poll of purchase %s failed: %s", purchase.id, exc.message)
        return purchase
    if outcome is None or outcome.status is purchase.status:
        return purchase
    apply_outcome(ctx, outcome)
    return _read(ctx, principal, team_id, purchase_id)


def _open_purchase(
    ctx: Context, principal: Principal, team_id: str, amount: Nanos
) -> tuple[Purchase, str | None]:
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN, lock=True)
        purchase = Purchase(
            id=uow.new_id("pur"),
            team_id=team_id,
            amount=amount,
            status=PaymentStatus.PENDING,
            created_at=ctx.clock.now(),
        )
        uow.payments.add_purchase(purchase, ctx.payments.name)
        method = uow.payments.saved_method(team_id)
        uow.commit()
    return purchase, method.customer_ref if method else None


def _abandon(ctx: Context, purchase: Purchase, reason: str) -> None:
    """The checkout could not be made: the purchase fails, nobody can pay it."""
    with ctx.uow() as uow:
        uow.payments.set_purchase_status(
            purchase.id, PaymentStatus.FAILED, None, reason, ctx.clock.now()
        )
        uow.commit()


def _read(ctx: Context, principal: Principal, team_id: str, purchase_id: str) -> Purchase:
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.BILLING_READ)
        purchase = uow.payments.purchase(purchase_id)
    if purchase is None or purchase.team_id != team_id:
        raise NotFound(PURCHASE_NOT_FOUND)
    return purchase


def _with_checkout(purchase: Purchase, session: CheckoutSession) -> Purchase:
    return replace(purchase, checkout_session_id=session.session_id, checkout_url=session.url)


def sandbox_checkout(ctx: Context) -> SandboxCheckout:
    """The sandbox's payment page, when the sandbox is the provider."""
    if not isinstance(ctx.payments, SandboxCheckout):
        raise NotFound("The sandbox checkout is only there with the sandbox payment provider.")
    return ctx.payments
