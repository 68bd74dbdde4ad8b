"""Operator grants and voids."""

from __future__ import annotations

from fastapi import APIRouter, Response

from creditledger.domain.grants import Grant, GrantKind, GrantSource, Scope
from creditledger.domain.money import parse_amount
from creditledger.entrypoints.api.deps import Caller, Ctx, IdempotencyKey
from creditledger.entrypoints.api.openapi import answer, errors, idempotency_key
from creditledger.entrypoints.api.schemas import GrantCreate, GrantPublic, grant_public
from creditledger.services.grants import NewGrant, grant_operator_credit, void_grant
from creditledger.services.idempotency import check_key, request_fingerprint, run_idempotent
from creditledger.services.ports import UnitOfWork

router = APIRouter(prefix="/v1/teams/{team_id}/grants", tags=["operators"])


@router.post(
    "",
    status_code=201,
    response_model=None,
    responses=answer(GrantPublic, 201),
    openapi_extra=idempotency_key(required=True),
)
def create_grant(
    team_id: str,
    body: GrantCreate,
    ctx: Ctx,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A promotional grant by an operator. Needs an `Idempotency-Key`."""
    key = check_key(idempotency_key)
    new = NewGrant(
        kind=GrantKind.PROMOTIONAL,
        source=GrantSource.MANUAL,
        amount=parse_amount(body.amount, maximum=ctx.settings.operator_grant_max_nanos),
        scope=Scope.parse(body.scope.model_dump(exclude_none=True) if body.scope else None),
        effective_at=body.effective_at,
        expires_at=body.expires_at,
        note=body.note,
    )
    fingerprint = request_fingerprint(
        b"POST", f"/v1/teams/{team_id}/grants".encode(), body.model_dump_json().encode()
    )

    def effect(uow: UnitOfWork) -> Grant:
        return grant_operator_credit(uow, ctx, caller, team_id, new)

    def render(grant: Grant) -> tuple[int, str]:
        return 201, grant_public(grant, ctx.clock.now()).model_dump_json()

    status, content = run_idempotent(ctx, caller.caller_id, key, fingerprint, effect, render)
    return Response(content=content, status_code=status, media_type="application/json")


@router.post("/{grant_id}/void", responses=errors(409))
def void(team_id: str, grant_id: str, ctx: Ctx, caller: Caller) -> GrantPublic:
    """Void a grant: its remaining credit is written off."""
    return grant_public(void_grant(ctx, caller, team_id, grant_id), ctx.clock.now())
