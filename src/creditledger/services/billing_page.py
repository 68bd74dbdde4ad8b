"""Everything the Billing page shows, read for one team admin in one call.

Each part comes from the use case that owns it (balance, credits, auto-recharge,
usage, history, invoices), so the page and the API can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from creditledger.domain.accounts import Principal
from creditledger.domain.errors import NotFound
from creditledger.domain.grants import Grant
from creditledger.domain.history import HistoryFilter
from creditledger.domain.ids import is_id
from creditledger.domain.invoices import Invoice
from creditledger.domain.notices import Notice, Webhook
from creditledger.domain.purchases import Purchase
from creditledger.domain.usage_report import DaySpend, daily_spend, last_days
from creditledger.services import billing, history, invoices, notices, purchases, recharge
from creditledger.services.access import Need, check_team_access
from creditledger.services.billing import Balance
from creditledger.services.context import Context
from creditledger.services.history import HistoryPage
from creditledger.services.recharge import AutoRechargeView
from creditledger.services.usage_report import usage_report

CREDITS_SHOWN = 200
INVOICES_SHOWN = 12
NOTICES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class PageQuery:
    history: HistoryFilter
    history_cursor: str | None = None
    history_limit: int = 25
    spend_by_model: bool = False
    returned_from: str | None = None
    """A purchase id the provider's checkout sent the admin back with."""


@dataclass(frozen=True, slots=True)
class BillingPage:
    now: datetime
    balance: Balance
    credits: list[Grant]
    """Every grant in consumption order."""
    auto_recharge: AutoRechargeView
    spend: list[DaySpend]
    history: HistoryPage
    invoices: list[Invoice]
    returned: Purchase | None
    webhook: Webhook | None
    notices: list[Notice]
    """The latest notices sent to the webhook, newest first."""


def billing_page(ctx: Context, principal: Principal, team_id: str, query: PageQuery) -> BillingPage:
    """The page for a team admin; members get ``Forbidden``, others ``NotFound``."""
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN)
    # First, so that a payment the provider just confirmed shows in the balance below.
    returned = _returned_purchase(ctx, principal, team_id, query.returned_from)
    now = ctx.clock.now()
    days = last_days(now)
    rows = usage_report(
        ctx,
        principal,
        team_id,
        days[0],
        days[-1] + timedelta(days=1),
        "day",
        "model" if query.spend_by_model else "product",
    )
    return BillingPage(
        now=now,
        balance=billing.get_balance(ctx, principal, team_id),
        credits=billing.list_credits(ctx, principal, team_id, None, CREDITS_SHOWN, None).grants,
        auto_recharge=recharge.get_auto_recharge(ctx, principal, team_id),
        spend=daily_spend(rows, days, query.spend_by_model),
        history=history.credit_history(
            ctx, principal, team_id, query.history, query.history_limit, query.history_cursor
        ),
        invoices=invoices.list_invoices(
            ctx, principal, team_id, None, None, INVOICES_SHOWN
        ).invoices,
        returned=returned,
        webhook=notices.find_webhook(ctx, principal, team_id),
        notices=notices.list_notices(ctx, principal, team_id, None, NOTICES_SHOWN).notices,
    )


def _returned_purchase(
    ctx: Context, principal: Principal, team_id: str, purchase_id: str | None
) -> Purchase | None:
    if purchase_id is None or not is_id(purchase_id, "pur"):
        return None
    try:
        return purchases.get_purchase(ctx, principal, team_id, purchase_id)
    except NotFound:
        return None
