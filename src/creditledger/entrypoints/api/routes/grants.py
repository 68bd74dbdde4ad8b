"""Operator grants and voids."""

from __future__ import annotations

from fastapi import APIRouter, Response

from creditledger.domain.grants import Scope
from creditledger.entrypoints.api.deps import Caller, Ctx, IdempotentRequired
from creditledger.entrypoints.api.openapi import answer, errors, idempotency_key
from creditledger.entrypoints.api.schemas import GrantCreate, GrantPublic, grant_public
from creditledger.services.grants import OperatorGrant, grant_operator_credit, void_grant

router = APIRouter(prefix="/v1/teams/{team_id}/grants", tags=["operators"])


@router.post(
    "",
    status_code=201,
    response_model=None,
    responses=answer(GrantPublic, 201),
    openapi_extra=idempotency_key(required=True),
)
def create_grant(
    team_id: str, body: GrantCreate, ctx: Ctx, idempotent: IdempotentRequired
) -> Response:
    """A promotional grant by an operator. Needs an `Idempotency-Key`."""
    asked = OperatorGrant(
        amount=body.amount,
        note=body.note,
        scope=Scope.parse(body.scope.model_dump(exclude_none=True) if body.scope else None),
        effective_at=body.effective_at,
        expires_at=body.expires_at,
    )
    return idempotent.run(
        body,
        lambda uow: grant_operator_credit(uow, ctx, idempotent.caller, team_id, asked),
        lambda grant: grant_public(grant, ctx.clock.now()),
    )


@router.post("/{grant_id}/void", responses=errors(409))
def void(team_id: str, grant_id: str, ctx: Ctx, caller: Caller) -> GrantPublic:
    """Void a grant: its remaining credit is written off."""
    return grant_public(void_grant(ctx, caller, team_id, grant_id), ctx.clock.now())
