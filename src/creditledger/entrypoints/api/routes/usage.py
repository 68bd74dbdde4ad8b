"""Usage events and authorization (service token), and the usage report (admins)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AwareDatetime

from creditledger.domain.errors import InvalidRequest, UnknownField
from creditledger.domain.grants import UsageScope
from creditledger.entrypoints.api.deps import Caller, Ctx
from creditledger.entrypoints.api.json_body import SCOPE_KEY
from creditledger.entrypoints.api.schemas import (
    AuthorizeCreate,
    AuthorizePublic,
    UsageBatchResult,
    UsageReportPublic,
    authorize_public,
    usage_batch_result,
    usage_report_public,
)
from creditledger.services.authorize import Authorizer
from creditledger.services.recharge import recharge_after_usage
from creditledger.services.usage import ingest_usage
from creditledger.services.usage_report import usage_report

router = APIRouter(tags=["platform"])

USAGE_EVENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["events"],
    "additionalProperties": False,
    "properties": {
        "events": {
            "type": "array",
            "maxItems": 5000,
            "items": {
                "type": "object",
                "required": ["id", "team_id", "product", "model", "timestamp", "quantities"],
                "properties": {
                    "id": {"type": "string", "maxLength": 255},
                    "team_id": {"type": "string"},
                    "product": {"enum": ["serverless", "dedicated", "container"]},
                    "model": {"type": "string"},
                    "gpu": {"type": "string"},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "quantities": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                },
            },
        }
    },
}


def _parse_batch(body: object) -> object:
    """The events of a body that ``BodyGuard`` has already decoded."""
    if not isinstance(body, dict) or "events" not in body:
        raise InvalidRequest('The body must be a JSON object: {"events": [...]}.', param="events")
    extra = body.keys() - {"events"}
    if extra:
        name = sorted(extra)[0]
        raise UnknownField(f"`{name}` is not a field of this request.", param=name)
    return body["events"]


@router.post(
    "/v1/usage-events",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": USAGE_EVENTS_SCHEMA}},
        }
    },
)
async def post_usage_events(
    request: Request, ctx: Ctx, caller: Caller, background: BackgroundTasks
) -> UsageBatchResult:
    """Report a batch of usage (≤ 5,000 events, ≤ 5 MB). Each event is taken or rejected
    on its own; an id seen before with the same payload is counted as a duplicate."""
    events = _parse_batch(request.scope.get(SCOPE_KEY))
    result = await run_in_threadpool(ingest_usage, ctx, caller, events)
    # After the answer: top up teams that this usage took below their threshold.
    background.add_task(recharge_after_usage, ctx, result.charged_teams)
    return usage_batch_result(result)


@router.post("/v1/authorize")
def authorize(body: AuthorizeCreate, request: Request, caller: Caller) -> AuthorizePublic:
    """May this team make another request now, and at which tier?"""
    authorizer: Authorizer = request.app.state.authorizer
    decision = authorizer.authorize(
        caller, body.team_id, UsageScope(body.product, body.model, body.gpu)
    )
    return authorize_public(decision)


@router.get("/v1/teams/{team_id}/usage", tags=["billing"])
def get_usage(
    team_id: str,
    ctx: Ctx,
    caller: Caller,
    since: Annotated[AwareDatetime | None, Query()] = None,
    until: Annotated[AwareDatetime | None, Query()] = None,
    granularity: Annotated[Literal["hour", "day"], Query()] = "day",
    group_by: Annotated[Literal["product", "model"], Query()] = "model",
) -> UsageReportPublic:
    """Cost per period, split into what credits covered and what is unpaid."""
    rows = usage_report(ctx, caller, team_id, since, until, granularity, group_by)
    return usage_report_public(rows)
