"""Purchases of prepaid credit, auto-recharge settings and operators' billing settings."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Response

from creditledger.entrypoints.api.deps import Caller, Ctx, IdempotentRequired
from creditledger.entrypoints.api.openapi import answer, errors, idempotency_key
from creditledger.entrypoints.api.schemas import (
    AutoRechargePublic,
    AutoRechargeUpdate,
    BillingSettingsPublic,
    BillingSettingsUpdate,
    PurchaseCreate,
    PurchasePublic,
    auto_recharge_public,
    billing_settings_public,
    purchase_public,
)
from creditledger.services import purchases, recharge
from creditledger.services.billing_settings import set_billing_settings

router = APIRouter(prefix="/v1/teams/{team_id}", tags=["billing"])


@router.post(
    "/purchases",
    status_code=201,
    response_model=None,
    responses=answer(PurchasePublic, 201),
    openapi_extra=idempotency_key(required=True),
)
def create_purchase(
    team_id: str, body: PurchaseCreate, ctx: Ctx, idempotent: IdempotentRequired
) -> Response:
    """Start buying prepaid credit: answers `pending` with the provider's `checkout_url`.

    Credit is granted once the provider confirms the payment. Needs an `Idempotency-Key`.
    """
    start = partial(purchases.start_purchase, ctx, idempotent.caller, team_id, body.amount)
    return idempotent.call(start, purchase_public)


@router.get("/purchases/{purchase_id}")
def get_purchase(team_id: str, purchase_id: str, ctx: Ctx, caller: Caller) -> PurchasePublic:
    """The purchase; while unsettled, the provider is asked for its status."""
    return purchase_public(purchases.get_purchase(ctx, caller, team_id, purchase_id))


@router.get("/auto-recharge")
def get_auto_recharge(team_id: str, ctx: Ctx, caller: Caller) -> AutoRechargePublic:
    return auto_recharge_public(recharge.get_auto_recharge(ctx, caller, team_id))


@router.put("/auto-recharge", responses=errors(409))
def put_auto_recharge(
    team_id: str, body: AutoRechargeUpdate, ctx: Ctx, caller: Caller
) -> AutoRechargePublic:
    """Top the balance up to `restore_to` when it falls below `threshold`.

    `restore_to` ≥ `threshold` + 10.00; turning it on needs a card saved by a purchase.
    """
    view = recharge.set_auto_recharge(
        ctx, caller, team_id, body.enabled, body.threshold, body.restore_to
    )
    return auto_recharge_public(view)


@router.put("/billing-settings", tags=["operators"])
def put_billing_settings(
    team_id: str, body: BillingSettingsUpdate, ctx: Ctx, caller: Caller
) -> BillingSettingsPublic:
    """Operators: set `billing_mode` and/or `tier_level` (null clears the override)."""
    settings = set_billing_settings(
        ctx,
        caller,
        team_id,
        body.billing_mode,
        set_tier="tier_level" in body.model_fields_set,
        tier_level=body.tier_level,
    )
    return billing_settings_public(settings)
