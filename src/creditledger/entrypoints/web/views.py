"""What the Billing page shows, in words and figures for people.

Money is written by ``domain.money.display_amount`` only; every rule (usable credit,
the order, tiers, expiry warnings) comes from the domain through the services.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.accounts import BillingMode
from creditledger.domain.grants import Grant, GrantKind, GrantSource, GrantStatus
from creditledger.domain.history import HistoryEntry
from creditledger.domain.invoices import Invoice
from creditledger.domain.ledger import EntryType
from creditledger.domain.money import Nanos, display_amount, format_amount
from creditledger.domain.notices import EVENT_TYPES, Notice, NoticeState, Webhook
from creditledger.domain.payments import PaymentStatus
from creditledger.domain.purchases import Purchase
from creditledger.services.billing import Balance
from creditledger.services.recharge import AutoRechargeView

KIND = {GrantKind.PROMOTIONAL: "Promotional", GrantKind.PREPAID: "Prepaid"}
SOURCE = {
    GrantSource.SIGNUP: "Sign-up bonus",
    GrantSource.PROMO_CODE: "Promo code",
    GrantSource.PURCHASE: "Purchase",
    GrantSource.AUTO_RECHARGE: "Auto-recharge",
    GrantSource.MANUAL: "Granted by the platform",
    GrantSource.REFUND: "Refund",
}
ENTRY_TYPE = {
    EntryType.GRANT: "Credit added",
    EntryType.USAGE: "Usage",
    EntryType.EXPIRY: "Expired",
    EntryType.VOID: "Voided",
    EntryType.REFUND: "Refund",
    EntryType.INVOICE: "Invoice",
    EntryType.ADJUSTMENT: "Adjustment",
}
USABLE = (GrantStatus.ACTIVE, GrantStatus.SCHEDULED)


def day(at: datetime | None) -> str:
    """``Dec 3, 2026`` (UTC)."""
    return "" if at is None else f"{at:%b} {at.day}, {at.year}"


def moment(at: datetime) -> str:
    """``Dec 3, 2026 14:05 UTC``."""
    return f"{day(at)} {at:%H:%M} UTC"


@dataclass(frozen=True, slots=True)
class TierView:
    level: int
    requests_per_minute: str
    max_output_tokens: str
    next_step: str
    pay_as_you_go: bool
    pay_as_you_go_text: str


def tier_view(balance: Balance, purchase_min: Nanos) -> TierView:
    tier, team = balance.tier, balance.team
    following = balance.next_tier
    if team.tier_level_override is not None:
        step = "Your tier is set by the platform. Contact sales to change it."
    elif following is None or following.reached_at is None:
        step = "This is the highest self-serve tier."
    else:
        left = following.reached_at - team.lifetime_paid
        step = (
            f"Pay {display_amount(left)} more (lifetime {display_amount(following.reached_at)}) "
            f"to reach tier {following.level}: {following.requests_per_minute:,} requests/min, "
            f"{following.max_output_tokens:,} max output tokens."
        )
    on = team.billing_mode is BillingMode.PAY_AS_YOU_GO
    text = (
        "On: usage beyond your credits is allowed and goes on the monthly invoice."
        if on
        else "Off: requests stop when credits run out. Buy credits once "
        f"({display_amount(purchase_min)} or more) to unlock pay-as-you-go."
    )
    return TierView(
        tier.level,
        f"{tier.requests_per_minute:,}",
        f"{tier.max_output_tokens:,}",
        step,
        on,
        text,
    )


@dataclass(frozen=True, slots=True)
class CreditView:
    id: str
    kind: str
    source: str
    scope: str
    amount: str
    remaining: str
    remaining_percent: int
    effective: str
    expires: str
    expires_soon: str | None
    status: str
    usable: bool


def scope_text(grant: Grant) -> str:
    scope = grant.scope
    if scope is None:
        return "Any product, model or GPU"
    parts = []
    for label, values in (
        ("Products", scope.products),
        ("Models", scope.models),
        ("GPUs", scope.gpus),
    ):
        if values is not None:
            parts.append(f"{label}: {', '.join(sorted(values))}")
    return "; ".join(parts)


def credit_view(grant: Grant, now: datetime) -> CreditView:
    status = grant.status_at(now)
    days = grant.expires_soon_in_days(now)
    soon = None if days is None else f"expires in {days} day{'s' if days != 1 else ''}"
    percent = 0 if grant.amount == 0 else grant.remaining * 100 // grant.amount
    return CreditView(
        id=grant.id,
        kind=KIND[grant.kind],
        source=SOURCE[grant.source],
        scope=scope_text(grant),
        amount=display_amount(grant.amount),
        remaining=display_amount(grant.remaining),
        remaining_percent=percent,
        effective=day(grant.effective_at),
        expires=day(grant.expires_at) if grant.expires_at else "Never",
        expires_soon=soon,
        status=status.value,
        usable=status in USABLE,
    )


@dataclass(frozen=True, slots=True)
class RechargeView:
    enabled: bool
    threshold: str
    restore_to: str
    threshold_input: str
    restore_to_input: str
    card: str | None
    last_decline: str | None


def recharge_view(view: AutoRechargeView) -> RechargeView:
    settings, method = view.settings, view.payment_method
    saved = method is not None and method.payment_method_ref is not None
    return RechargeView(
        enabled=bool(settings and settings.enabled),
        threshold=display_amount(settings.threshold) if settings else "",
        restore_to=display_amount(settings.restore_to) if settings else "",
        threshold_input=format_amount(settings.threshold) if settings else "5.00",
        restore_to_input=format_amount(settings.restore_to) if settings else "25.00",
        card="The card of your first purchase is saved for top-ups." if saved else None,
        last_decline=settings.disabled_reason if settings else None,
    )


@dataclass(frozen=True, slots=True)
class EntryView:
    when: str
    type: str
    kind: str
    description: str
    amount: str
    balance_after: str
    negative: bool


def entry_view(entry: HistoryEntry) -> EntryView:
    return EntryView(
        when=moment(entry.occurred_at),
        type=ENTRY_TYPE[entry.type],
        kind=KIND[entry.kind] if entry.kind else "Unpaid balance",
        description=entry.description,
        amount=display_amount(entry.amount),
        balance_after=display_amount(entry.balance_after),
        negative=entry.amount < 0,
    )


@dataclass(frozen=True, slots=True)
class InvoiceView:
    ref: str
    number: str
    period: str
    status: str
    total: str
    amount_due: str


def invoice_view(invoice: Invoice) -> InvoiceView:
    start = invoice.period.start
    return InvoiceView(
        ref=invoice.id,
        number=invoice.number or "Draft",
        period=f"{start:%B} {start.year}",
        status=invoice.status.value,
        total=display_amount(invoice.total),
        amount_due=display_amount(invoice.amount_due),
    )


def purchase_message(purchase: Purchase) -> tuple[str, str]:
    """(tone, text) for a checkout the admin just came back from."""
    amount = display_amount(purchase.amount)
    if purchase.status is PaymentStatus.SUCCEEDED:
        return "success", f"Payment received: {amount} of prepaid credit was added."
    if purchase.status is PaymentStatus.PENDING:
        return "info", f"Your payment of {amount} is being confirmed; the credit shows once it is."
    if purchase.status is not PaymentStatus.FAILED:
        return "info", f"This purchase of {amount} was {purchase.status.value}."
    reason = purchase.failure_reason or "the payment did not go through"
    return "error", f"The payment of {amount} failed: {reason.rstrip('.')}. Nothing was charged."


NOTICE_TYPE = {
    "balance.low": "Low balance",
    "credits.expiring": "Credits expiring soon",
    "credits.expired": "Credits expired",
    "payment.failed": "Payment failed",
    "auto_recharge.disabled": "Auto-recharge turned off",
    "invoice.opened": "Invoice opened",
    "invoice.paid": "Invoice paid",
    "invoice.payment_failed": "Invoice payment failed",
    "ping": "Test",
}
"""How the Billing page names each notice type (every type of ``domain.notices``)."""


@dataclass(frozen=True, slots=True)
class WebhookView:
    url: str
    events: list[tuple[str, str, bool]]
    """(type, label, sent) for every event type."""
    all_events: bool
    disabled: str | None
    """Why notices stopped, when they did."""


def webhook_view(webhook: Webhook | None) -> WebhookView:
    chosen = None if webhook is None else webhook.events
    return WebhookView(
        url="" if webhook is None else webhook.url,
        events=[(t, NOTICE_TYPE[t], chosen is None or t in chosen) for t in EVENT_TYPES],
        all_events=chosen is None,
        disabled=None
        if webhook is None or webhook.disabled_at is None
        else webhook.disabled_reason,
    )


@dataclass(frozen=True, slots=True)
class NoticeView:
    id: str
    when: str
    type: str
    state: str
    attempts: int
    result: str
    """The receiver's last answer, or why it could not be reached."""
    next_try: str | None


def notice_view(notice: Notice) -> NoticeView:
    if notice.last_error is not None:
        result = notice.last_error
    elif notice.last_status is not None:
        result = f"HTTP {notice.last_status}"
    else:
        result = "Not tried yet"
    pending = notice.state is NoticeState.PENDING
    return NoticeView(
        id=notice.id,
        when=moment(notice.created_at),
        type=NOTICE_TYPE.get(notice.type, notice.type),
        state=notice.state.value,
        attempts=notice.attempts,
        result=result,
        next_try=moment(notice.next_attempt_at) if pending and notice.next_attempt_at else None,
    )
