"""Purchases of prepaid credit, auto-recharge settings and operators' billing settings."""

from __future__ import annotations

from fastapi import APIRouter, Response

from creditledger.domain.money import parse_amount
from creditledger.domain.purchases import Purchase
from creditledger.entrypoints.api.deps import Caller, Ctx, IdempotencyKey
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
from creditledger.services.idempotency import check_key, request_fingerprint

router = APIRouter(prefix="/v1/teams/{team_id}", tags=["billing"])


@router.post(
    "/purchases",
    status_code=201,
    response_model=None,
    responses=answer(PurchasePublic, 201),
    openapi_extra=idempotency_key(required=True),
)
def create_purchase(
    team_id: str,
    body: PurchaseCreate,
    ctx: Ctx,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Start buying prepaid credit: answers `pending` with the provider's `checkout_url`.

    Credit is granted once the provider confirms the payment. Needs an `Idempotency-Key`.
    """
    key = check_key(idempotency_key)
    amount = parse_amount(
        body.amount,
        minimum=ctx.settings.purchase_min_nanos,
        maximum=ctx.settings.purchase_max_nanos,
        whole_cents=True,
    )
    fingerprint = request_fingerprint(
        b"POST", f"/v1/teams/{team_id}/purchases".encode(), str(amount).encode()
    )

    def render(purchase: Purchase) -> tuple[int, str]:
        return 201, purchase_public(purchase).model_dump_json()

    status, content = purchases.start_purchase(
        ctx, caller, team_id, amount, key, fingerprint, render
    )
    return Response(content=content, status_code=status, media_type="application/json")


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
    maximum = ctx.settings.purchase_max_nanos
    threshold = (
        None
        if body.threshold is None
        else parse_amount(
            body.threshold, param="threshold", minimum=0, maximum=maximum, whole_cents=True
        )
    )
    restore_to = (
        None
        if body.restore_to is None
        else parse_amount(
            body.restore_to,
            param="restore_to",
            minimum=ctx.settings.purchase_min_nanos,
            maximum=maximum,
            whole_cents=True,
        )
    )
    view = recharge.set_auto_recharge(ctx, caller, team_id, body.enabled, threshold, restore_to)
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
