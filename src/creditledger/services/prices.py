"""The price book and team pricing (bulk discounts), set by operators."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.accounts import Principal
from creditledger.domain.audit import AuditAction
from creditledger.domain.errors import EmptyPriceBook, InvalidRequest
from creditledger.domain.money import parse_amount
from creditledger.domain.pricing import (
    BASIS_POINTS,
    Price,
    PriceBook,
    TeamPricing,
    check_price,
    custom_subjects,
    dropped_in_use,
    dropped_prices,
    effective,
    prices_in_use,
)
from creditledger.domain.usage import MAX_AGE
from creditledger.services import audit
from creditledger.services.access import Need, check_team_access, require_operator
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork

MAX_PRICES = 10_000
_PERCENT_RE = re.compile(r"\A(?:100(?:\.0{1,2})?|[0-9]{1,2}(?:\.[0-9]{1,2})?)\Z")


@dataclass(frozen=True, slots=True)
class PriceInput:
    product: str
    model: str | None
    gpu: str | None
    meter: str
    unit_price: object
    per_units: int


def parse_prices(items: list[PriceInput]) -> tuple[Price, ...]:
    if len(items) > MAX_PRICES:
        raise InvalidRequest(f"At most {MAX_PRICES} prices.", param="prices")
    prices: list[Price] = []
    seen: set[tuple[str, str | None, str | None, str]] = set()
    for index, item in enumerate(items):
        nanos = parse_amount(item.unit_price, param=f"prices[{index}].unit_price", minimum=0)
        price = Price(item.product, item.model, item.gpu, item.meter, nanos, item.per_units)
        check_price(price, index)
        if price.key in seen:
            raise InvalidRequest(f"`prices[{index}]` repeats a price.", param=f"prices[{index}]")
        seen.add(price.key)
        prices.append(price)
    return tuple(prices)


def parse_discount(raw: object) -> int:
    """A percentage as a decimal string ("12.5") or an integer, into basis points."""
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(text, str) or not _PERCENT_RE.match(text):
        raise InvalidRequest(
            "`discount_percent` must be a number from 0 to 100 with at most 2 decimals.",
            param="discount_percent",
        )
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int(frac.ljust(2, "0") or 0)


def set_price_book(
    ctx: Context, principal: Principal, items: list[PriceInput], allow_removals: bool = False
) -> PriceBook:
    """Replace the price book from now on; earlier versions keep pricing earlier usage.

    A book without prices is refused; so is one that leaves out prices still in use
    (see ``pricing.dropped_in_use``), unless ``allow_removals``.
    """
    require_operator(principal)
    prices = parse_prices(items)
    if not prices:
        raise EmptyPriceBook(
            "A price book needs at least one price: without any, every usage event "
            "would be refused.",
            param="prices",
        )
    with ctx.uow() as uow:
        now = ctx.clock.now()
        if not allow_removals:
            current = effective(ctx.price_books.current(uow), now)
            _refuse_dropping_prices_in_use(uow, current, PriceBook(now, prices))
        uow.pricing.add_book(prices, now, now)
        audit.record(
            uow,
            ctx,
            principal,
            AuditAction.PRICE_BOOK_SET,
            detail={"prices": len(prices), "effective_from": now.isoformat()},
        )
        uow.commit()
    return PriceBook(now, prices)


def _refuse_dropping_prices_in_use(
    uow: UnitOfWork, current: PriceBook | None, new: PriceBook
) -> None:
    dropped = dropped_prices(current, new)
    if not dropped:
        return
    now = new.effective_from
    used = uow.usage.subjects_since(now - MAX_AGE, dropped)
    custom = custom_subjects(uow.pricing.for_all_teams().values(), now)
    in_use = dropped_in_use(dropped, new, used, custom)
    if in_use:
        raise prices_in_use(in_use)


def current_price_book(ctx: Context, principal: Principal) -> PriceBook | None:
    require_operator(principal)
    with ctx.uow(write=False) as uow:
        books = uow.pricing.books()
    return books[-1] if books else None


def set_team_pricing(
    ctx: Context,
    principal: Principal,
    team_id: str,
    items: list[PriceInput] | None,
    discount: object | None,
    effective_from: datetime | None,
) -> TeamPricing:
    """Custom prices and/or a discount for one team, from ``effective_from`` (default now)."""
    require_operator(principal)
    if items is None and discount is None:
        raise InvalidRequest("Send `prices`, `discount_percent` or both.")
    discount_bp = parse_discount(discount) if discount is not None else 0
    if discount_bp > BASIS_POINTS:
        raise InvalidRequest("`discount_percent` can not exceed 100.", param="discount_percent")
    pricing = TeamPricing(
        effective_from=effective_from or ctx.clock.now(),
        discount_bp=discount_bp,
        prices=parse_prices(items or []),
    )
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.OPERATOR, lock=True)
        uow.pricing.add_team_pricing(team_id, pricing, ctx.clock.now())
        audit.record(
            uow,
            ctx,
            principal,
            AuditAction.TEAM_PRICING_SET,
            team_id,
            {
                "discount_percent": f"{pricing.discount_bp // 100}.{pricing.discount_bp % 100:02d}",
                "prices": len(pricing.prices),
                "effective_from": pricing.effective_from.isoformat(),
            },
        )
        uow.commit()
    return pricing
