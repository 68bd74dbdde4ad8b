"""The price book and team pricing (operators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from creditledger.entrypoints.api.deps import Caller, Ctx
from creditledger.entrypoints.api.schemas import (
    PriceBody,
    PriceBookPublic,
    TeamPricingBody,
    TeamPricingPublic,
    price_book_public,
    team_pricing_public,
)
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


@router.put("/v1/prices")
def put_prices(
    body: list[PriceBody],
    ctx: Ctx,
    caller: Caller,
    allow_removals: Annotated[
        bool,
        Query(description="Also drop prices still in use (recent usage or custom prices)"),
    ] = False,
) -> PriceBookPublic:
    """Replace the price book from now on (usage before now keeps its old prices).

    An empty book is refused (`empty_price_book`, 422); so is one that leaves out prices
    still in use (`prices_in_use`, 409) unless `allow_removals=true`."""
    return price_book_public(set_price_book(ctx, caller, _inputs(body), allow_removals))


@router.get("/v1/prices")
def get_prices(ctx: Ctx, caller: Caller) -> PriceBookPublic:
    """The price book in force."""
    return price_book_public(current_price_book(ctx, caller))


@router.put("/v1/teams/{team_id}/pricing")
def put_team_pricing(
    team_id: str, body: TeamPricingBody, ctx: Ctx, caller: Caller
) -> TeamPricingPublic:
    """Custom prices and/or a percentage discount for one team, from `effective_from`."""
    pricing = set_team_pricing(
        ctx,
        caller,
        team_id,
        _inputs(body.prices) if body.prices is not None else None,
        body.discount_percent,
        body.effective_from,
    )
    return team_pricing_public(team_id, pricing)
