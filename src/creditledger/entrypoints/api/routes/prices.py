"""The price book and team pricing (operators)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from creditledger.domain.pricing import Price, PriceBook
from creditledger.entrypoints.api.deps import Caller, Ctx
from creditledger.entrypoints.api.schemas import PriceBody, TeamPricingBody, iso, money
from creditledger.services.prices import (
    PriceInput,
    current_price_book,
    set_price_book,
    set_team_pricing,
)

router = APIRouter(tags=["operators"])


def _inputs(items: list[PriceBody]) -> list[PriceInput]:
    return [
        PriceInput(p.product, p.model, p.gpu, p.meter, p.unit_price, p.per_units) for p in items
    ]


def _price_public(p: Price) -> dict[str, Any]:
    return {
        "product": p.product,
        "model": p.model,
        "gpu": p.gpu,
        "meter": p.meter,
        "unit_price": money(p.unit_price),
        "per_units": p.per_units,
    }


def _book_public(book: PriceBook | None) -> dict[str, Any]:
    if book is None:
        return {"effective_from": None, "data": []}
    return {
        "effective_from": iso(book.effective_from),
        "data": [_price_public(p) for p in book.prices],
    }


@router.put("/v1/prices")
def put_prices(body: list[PriceBody], ctx: Ctx, caller: Caller) -> dict[str, Any]:
    """Replace the price book from now on (usage before now keeps its old prices)."""
    return _book_public(set_price_book(ctx, caller, _inputs(body)))


@router.get("/v1/prices")
def get_prices(ctx: Ctx, caller: Caller) -> dict[str, Any]:
    """The price book in force."""
    return _book_public(current_price_book(ctx, caller))


@router.put("/v1/teams/{team_id}/pricing")
def put_team_pricing(
    team_id: str, body: TeamPricingBody, ctx: Ctx, caller: Caller
) -> dict[str, Any]:
    """Custom prices and/or a percentage discount for one team, from `effective_from`."""
    pricing = set_team_pricing(
        ctx,
        caller,
        team_id,
        _inputs(body.prices) if body.prices is not None else None,
        body.discount_percent,
        body.effective_from,
    )
    return {
        "team_id": team_id,
        "effective_from": iso(pricing.effective_from),
        "discount_percent": f"{pricing.discount_bp // 100}.{pricing.discount_bp % 100:02d}",
        "prices": [_price_public(p) for p in pricing.prices],
    }
