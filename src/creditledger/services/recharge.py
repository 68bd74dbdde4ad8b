"""Auto-recharge: settings, the charge, and the periodic job.

At most one recharge is in flight per team: the pending ``recharges`` row is
inserted with ``ON CONFLICT DO NOTHING`` against a partial UNIQUE index on
pending rows, so of many simultaneous callers exactly one goes on to charge. The
decision is taken under the team lock, and a recharge leaves ``pending`` in the
transaction that grants it, so no caller decides on a balance that another
recharge has already topped up.
That row is committed before the provider is called (no transaction is held
across the network); the outcome is then applied like any other payment, and a
recharge the process lost track of is charged again later with the same
idempotency key, which the provider answers without charging twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import timedelta

from creditledger.domain.accounts import Principal
from creditledger.domain.audit import AuditAction
from creditledger.domain.availability import usable_credit
from creditledger.domain.errors import CreditLedgerError, InvalidRequest, PaymentMethodRequired
from creditledger.domain.money import Nanos, parse_amount
from creditledger.domain.payments import (
    OffSessionCharge,
    PaymentOutcome,
    PaymentPurpose,
    PaymentStatus,
    SavedPaymentMethod,
)
from creditledger.domain.recharge import (
    AutoRecharge,
    Recharge,
    RechargeStatus,
    check_settings,
    month_start,
    recharge_amount,
)
from creditledger.services import audit
from creditledger.services.access import Need, check_team_access
from creditledger.services.context import Context
from creditledger.services.payments import apply_outcome, disable_auto_recharge
from creditledger.services.ports import UnitOfWork

log = logging.getLogger(__name__)

RESUME_AFTER = timedelta(seconds=60)
"""A recharge still pending after this long is charged again (same idempotency key)."""
SCAN_LIMIT = 500


@dataclass(frozen=True, slots=True)
class AutoRechargeView:
    settings: AutoRecharge | None
    payment_method: SavedPaymentMethod | None


def get_auto_recharge(ctx: Context, principal: Principal, team_id: str) -> AutoRechargeView:
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.BILLING_READ)
        view = AutoRechargeView(uow.recharges.settings(team_id), uow.payments.saved_method(team_id))
    audit.record_read(ctx, principal, AuditAction.AUTO_RECHARGE_READ, team_id)
    return view


def set_auto_recharge(
    ctx: Context,
    principal: Principal,
    team_id: str,
    enabled: bool,
    threshold_text: object | None,
    restore_to_text: object | None,
) -> AutoRechargeView:
    """Turn auto-recharge on (with a saved card) or off. The amounts are decimal dollars as
    sent (None: keep the current one): whole cents, ``threshold`` up to the largest
    purchase, ``restore_to`` a purchase's amount, and at least $10 above ``threshold``."""
    threshold = _setting(threshold_text, "threshold", 0, ctx.settings.purchase_max_nanos)
    restore_to = _setting(
        restore_to_text,
        "restore_to",
        ctx.settings.purchase_min_nanos,
        ctx.settings.purchase_max_nanos,
    )
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN, lock=True)
        current = uow.recharges.settings(team_id)
        method = uow.payments.saved_method(team_id)
        if current is not None:
            threshold = current.threshold if threshold is None else threshold
            restore_to = current.restore_to if restore_to is None else restore_to
        if threshold is None or restore_to is None:
            if enabled:
                raise InvalidRequest(
                    "Send `threshold` and `restore_to` to turn auto-recharge on.",
                    param="threshold" if threshold is None else "restore_to",
                )
            return AutoRechargeView(current, method)
        check_settings(threshold, restore_to, ctx.settings.purchase_max_nanos)
        if enabled and (method is None or method.payment_method_ref is None):
            raise PaymentMethodRequired(
                "Auto-recharge needs a saved card: buy credits once, then turn it on."
            )
        settings = AutoRecharge(enabled=enabled, threshold=threshold, restore_to=restore_to)
        uow.recharges.save_settings(team_id, settings, ctx.clock.now())
        uow.commit()
    return AutoRechargeView(settings, method)


def _setting(text: object | None, param: str, minimum: Nanos, maximum: Nanos) -> Nanos | None:
    if text is None:
        return None
    return parse_amount(text, param=param, minimum=minimum, maximum=maximum, whole_cents=True)


def recharge_if_needed(ctx: Context, team_id: str) -> bool:
    """Start one off-session charge if the team's available credit is below its
    threshold and none is in flight; True when this call started it.

    Cheap when nothing is due (one read); otherwise the decision is taken again under
    the team lock, so it never rests on a balance read before another recharge's
    grant committed.
    """
    with ctx.uow(write=False) as uow:
        if _due(ctx, uow, team_id) is None:
            return False
    with ctx.uow() as uow:
        uow.teams.lock(team_id)
        now = ctx.clock.now()
        amount = _due(ctx, uow, team_id)
        if amount is None:
            return False
        method = uow.payments.saved_method(team_id)
        if method is None or method.payment_method_ref is None:
            disable_auto_recharge(uow, ctx, team_id, "There is no saved card to charge.", now)
            uow.commit()
            return False
        recharge = Recharge(
            id=uow.new_id("rch"),
            team_id=team_id,
            amount=amount,
            status=RechargeStatus.PENDING,
            created_at=now,
        )
        if not uow.recharges.start(recharge):
            return False  # another one is in flight
        uow.commit()
    _charge(ctx, recharge, method)
    return True


def recharge_after_usage(ctx: Context, team_ids: Collection[str]) -> int:
    """Called once usage for ``team_ids`` has committed: recharge those that crossed
    their threshold. One read when none of them has auto-recharge on."""
    if not team_ids:
        return 0
    with ctx.uow(write=False) as uow:
        enabled = uow.recharges.enabled_among(sorted(team_ids))
    started = 0
    for team_id in enabled:
        try:
            started += recharge_if_needed(ctx, team_id)
        except CreditLedgerError as exc:
            log.warning("auto-recharge of team %s: %s", team_id, exc.message)
    return started


def _due(ctx: Context, uow: UnitOfWork, team_id: str) -> int | None:
    """The amount to recharge now, or None."""
    settings = uow.recharges.settings(team_id)
    if settings is None or not settings.enabled:
        return None
    now = ctx.clock.now()
    available = usable_credit(uow.grants.for_team(team_id), None, now)
    if available >= settings.threshold:
        return None  # the common case: spare the month's sum
    return recharge_amount(
        settings,
        available,
        uow.recharges.charged_since(team_id, month_start(now)),
        ctx.settings.auto_recharge_monthly_cap_nanos,
        ctx.settings.purchase_min_nanos,
    )


def run_auto_recharge(ctx: Context) -> int:
    """The periodic job: recharge every team below its threshold, and charge again the
    recharges a crashed or cut-off process left pending. How many were started."""
    with ctx.uow(write=False) as uow:
        now = ctx.clock.now()
        teams = uow.recharges.teams_below_threshold(now, SCAN_LIMIT)
        stale = uow.recharges.pending_created_before(now - RESUME_AFTER, SCAN_LIMIT)
    started = 0
    for recharge in stale:
        with ctx.uow(write=False) as uow:
            method = uow.payments.saved_method(recharge.team_id)
        _charge(ctx, recharge, method)
    for team_id in teams:
        try:
            started += recharge_if_needed(ctx, team_id)
        except CreditLedgerError as exc:
            log.warning("auto-recharge of team %s: %s", team_id, exc.message)
    return started


def _charge(ctx: Context, recharge: Recharge, method: SavedPaymentMethod | None) -> None:
    if method is None or method.payment_method_ref is None:
        outcome = PaymentOutcome(
            PaymentStatus.FAILED, None, failure_reason="There is no saved card to charge."
        )
    else:
        try:
            outcome = ctx.payments.charge_off_session(
                OffSessionCharge(
                    reference=recharge.id,
                    team_id=recharge.team_id,
                    amount=recharge.amount,
                    customer_ref=method.customer_ref,
                    payment_method_ref=method.payment_method_ref,
                    idempotency_key=f"recharge:{recharge.id}",
                )
            )
        except CreditLedgerError as exc:
            log.warning("recharge %s not charged yet: %s", recharge.id, exc.message)
            return  # still pending: charged again later with the same key
    if outcome.reference is None:
        outcome = replace(outcome, purpose=PaymentPurpose.AUTO_RECHARGE, reference=recharge.id)
    apply_outcome(ctx, outcome)
