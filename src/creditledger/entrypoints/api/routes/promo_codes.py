"""Promo codes: operators create, show and disable them; team admins redeem them."""

from __future__ import annotations

from fastapi import APIRouter, Response

from creditledger.domain.grants import Scope
from creditledger.entrypoints.api.deps import Caller, Ctx, IdempotentOptional
from creditledger.entrypoints.api.openapi import answer, errors, idempotency_key
from creditledger.entrypoints.api.schemas import (
    GrantPublic,
    PromoCodeCreate,
    PromoCodePublic,
    PromoCodeRedeem,
    PromoCodesCreated,
    PromoCodeUpdate,
    grant_public,
    promo_code_public,
    promo_codes_created,
)
from creditledger.services.promo_codes import (
    NewPromoCodes,
    get_promo_code,
    issue_promo_codes,
    redeem_promo_code,
    set_promo_code_disabled,
)

router = APIRouter(prefix="/v1")


@router.post(
    "/promo-codes",
    status_code=201,
    tags=["operators"],
    response_model=None,
    responses=answer(PromoCodesCreated, 201),
    openapi_extra=idempotency_key(required=False),
)
def create(body: PromoCodeCreate, ctx: Ctx, idempotent: IdempotentOptional) -> Response:
    """One code with the chosen text, or `count` random codes. An `Idempotency-Key` is
    optional: with one, a retried request answers with the same codes instead of making
    a second batch."""
    new = NewPromoCodes(
        amount=body.amount,
        max_redemptions=body.max_redemptions,
        scope=Scope.parse(body.scope.model_dump(exclude_none=True) if body.scope else None),
        valid_from=body.valid_from,
        redeem_by=body.redeem_by,
        credit_expires_at=body.credit_expires_at,
        credit_valid_days=body.credit_valid_days,
        code=body.code,
        count=body.count,
    )
    return idempotent.run(
        body,
        lambda uow: issue_promo_codes(uow, ctx, idempotent.caller, new),
        promo_codes_created,
    )


@router.get("/promo-codes/{promo_id}", tags=["operators"])
def show(promo_id: str, ctx: Ctx, caller: Caller) -> PromoCodePublic:
    """The code, its terms and how many times it was redeemed."""
    return promo_code_public(get_promo_code(ctx, caller, promo_id))


@router.patch("/promo-codes/{promo_id}", tags=["operators"])
def update(promo_id: str, body: PromoCodeUpdate, ctx: Ctx, caller: Caller) -> PromoCodePublic:
    """Disable a code (`{"disabled": true}`): redemptions stop at once. `false` enables it."""
    return promo_code_public(set_promo_code_disabled(ctx, caller, promo_id, body.disabled))


@router.post(
    "/teams/{team_id}/promo-codes/redeem",
    status_code=201,
    tags=["billing"],
    responses=errors(409, 429),
)
def redeem(team_id: str, body: PromoCodeRedeem, ctx: Ctx, caller: Caller) -> GrantPublic:
    """Redeem a promo code for the team (team admins): 201 with the promotional grant, or
    `promo_code_invalid`, `promo_code_expired`, `promo_code_already_redeemed`,
    `promo_code_limit_reached`, `too_many_attempts` (429, `Retry-After`)."""
    grant = redeem_promo_code(ctx, caller, team_id, body.code)
    return grant_public(grant, ctx.clock.now())
