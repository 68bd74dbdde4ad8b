"""Usage events and authorization (service token), and the usage report (admins)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Request

from creditledger.domain.grants import PRODUCTS, UsageScope
from creditledger.domain.usage import MAX_AGE, MAX_AHEAD, MAX_EVENTS_PER_BATCH
from creditledger.entrypoints.api.deps import BearerToken, Caller, Ctx, client_address
from creditledger.entrypoints.api.group_commit import GroupCommit
from creditledger.entrypoints.api.json_body import SCOPE_KEY, usage_events
from creditledger.entrypoints.api.openapi import errors
from creditledger.entrypoints.api.schemas import (
    AuthorizeCreate,
    AuthorizePublic,
    HoldReleasePublic,
    Instant,
    UsageBatchResult,
    UsageReportPublic,
    authorize_public,
    usage_batch_result,
    usage_report_public,
)
from creditledger.services.authorize import Authorizer, release_hold
from creditledger.services.recharge import recharge_after_usage
from creditledger.services.usage_report import usage_report

router = APIRouter(tags=["platform"])

USAGE_EVENT_DOC = """One usage event. Each is checked on its own: one that is not valid is
listed in `rejected` with its code (`invalid_event`, `unknown_field`, `unknown_team`,
`unknown_product`, `unknown_model`, `unknown_meter`, `invalid_quantity`,
`invalid_timestamp`, `timestamp_out_of_range`, `event_id_conflict`) and the rest of the batch
is still taken. Fields: `id` (1 to 255 printable ASCII characters, unique per team: the
idempotency key), `team_id`, `product` (one of %s), `model`, `gpu` (when the product
is priced per GPU), `timestamp` (RFC 3339 with a zone; not more than %d days old nor %d
minutes ahead), `quantities` (meter name → whole number ≥ 0, at least one)."""

USAGE_EVENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["events"],
    "additionalProperties": False,
    "properties": {
        "events": {
            "type": "array",
            "maxItems": MAX_EVENTS_PER_BATCH,
            # No constraints on the items themselves: a bad event is answered in
            # `rejected`, not by refusing the batch.
            "items": {
                "description": USAGE_EVENT_DOC
                % (
                    ", ".join(f"`{p}`" for p in sorted(PRODUCTS)),
                    MAX_AGE.days,
                    MAX_AHEAD // timedelta(minutes=1),
                ),
                "examples": [
                    {
                        "id": "req-8f2c",
                        "team_id": "team_3kq9x7m2p4t8w1za",
                        "product": "serverless",
                        "model": "llama-3.1-70b",
                        "timestamp": "2026-11-24T12:00:00Z",
                        "quantities": {"input_tokens": 1200, "output_tokens": 300},
                    }
                ],
            },
        }
    },
}


@router.post(
    "/v1/usage-events",
    responses=errors(401, 403),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": USAGE_EVENTS_SCHEMA}},
        }
    },
)
async def post_usage_events(
    request: Request, ctx: Ctx, token: BearerToken, background: BackgroundTasks
) -> UsageBatchResult:
    """Report a batch of usage (≤ 5,000 events, ≤ 5 MB). Each event is taken or rejected
    on its own; an id seen before with the same payload is counted as a duplicate."""
    events = usage_events(request.scope.get(SCOPE_KEY))
    groups: GroupCommit = request.app.state.usage_groups
    written = await groups.ingest(token, client_address(request), events)
    # After the answer: top up teams that this usage took below their threshold (one
    # member of each group carries the group's recharging teams; the others, none).
    if written.top_up:
        background.add_task(recharge_after_usage, ctx, written.top_up)
    return usage_batch_result(written.result)


@router.post("/v1/authorize", responses=errors(401, 403, 404))
def authorize(body: AuthorizeCreate, request: Request, token: BearerToken) -> AuthorizePublic:
    """May this team make another request now, and at which tier?

    Served by ``AuthorizeFastPath`` in front of the framework; this route answers the
    requests that path hands on (bodies it does not decode, unusual headers), with the
    same answers and errors."""
    authorizer: Authorizer = request.app.state.authorizer
    decision = authorizer.request(
        token,
        client_address(request),
        body.team_id,
        UsageScope(body.product, body.model, body.gpu),
        body.request_id,
        body.estimate,
    )
    return authorize_public(decision)


@router.post("/v1/holds/{hold_id}/release")
def release(hold_id: str, ctx: Ctx, caller: Caller) -> HoldReleasePublic:
    """End a hold early: the request it was for did not happen or was cut short.
    A hold ends once; releasing one that has ended changes nothing."""
    return HoldReleasePublic(id=hold_id, released=release_hold(ctx, caller, hold_id))


@router.get("/v1/teams/{team_id}/usage", tags=["billing"])
def get_usage(
    team_id: str,
    ctx: Ctx,
    caller: Caller,
    since: Annotated[Instant | None, Query()] = None,
    until: Annotated[Instant | None, Query()] = None,
    granularity: Annotated[Literal["hour", "day"], Query()] = "day",
    group_by: Annotated[Literal["product", "model"], Query()] = "model",
) -> UsageReportPublic:
    """Cost per period, split into what credits covered and what is unpaid."""
    rows = usage_report(ctx, caller, team_id, since, until, granularity, group_by)
    return usage_report_public(rows)
