"""Balance, credits and credit history (team admins; operators may read)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from creditledger.domain.grants import GrantKind, GrantStatus
from creditledger.domain.history import HistoryFilter
from creditledger.domain.ledger import EntryType
from creditledger.entrypoints.api import downloads
from creditledger.entrypoints.api.deps import Caller, Ctx, Cursor, KnownCaller, Limit
from creditledger.entrypoints.api.schemas import (
    BalancePublic,
    GrantPage,
    HistoryPage,
    Instant,
    balance_public,
    grant_public,
    history_page_json,
)
from creditledger.services import billing, history

router = APIRouter(prefix="/v1/teams/{team_id}", tags=["billing"])

CreditStatus = Literal["active", "depleted", "expired", "voided", "scheduled", "all"]


@router.get("/balance")
def get_balance(team_id: str, ctx: Ctx, caller: Caller) -> BalancePublic:
    return balance_public(billing.get_balance(ctx, caller, team_id))


@router.get("/credits")
def list_credits(
    team_id: str,
    ctx: Ctx,
    caller: Caller,
    status: Annotated[CreditStatus | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> GrantPage:
    """The team's grants in consumption order; `status=all` (default) lists every one."""
    wanted = None if status in (None, "all") else GrantStatus(status)
    result = billing.list_credits(ctx, caller, team_id, wanted, limit, cursor)
    now = ctx.clock.now()
    return GrantPage(
        data=[grant_public(g, now) for g in result.grants], next_cursor=result.next_after
    )


async def _history_filter(
    type: Annotated[EntryType | None, Query()] = None,
    kind: Annotated[GrantKind | None, Query()] = None,
    since: Annotated[Instant | None, Query()] = None,
    until: Annotated[Instant | None, Query()] = None,
) -> HistoryFilter:
    return HistoryFilter(type=type, kind=kind, since=since, until=until)


Filter = Annotated[HistoryFilter, Depends(_history_filter)]


@router.get("/credit-history", response_model=HistoryPage)
async def credit_history(
    team_id: str,
    ctx: Ctx,
    caller: KnownCaller,
    flt: Filter,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Every change to the team's credit, newest first, with the balance after it."""
    # One hop to the thread pool for the page's one unit of work; the caller comes from
    # memory and the answer is rendered without models (docs/decisions/0023).
    result = await run_in_threadpool(
        history.credit_history, ctx, caller, team_id, flt, limit, cursor
    )
    return Response(
        history_page_json(result.entries, result.next_cursor), media_type="application/json"
    )


@router.get(
    "/credit-history.csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One row per entry, the columns of the JSON list",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def credit_history_csv(
    team_id: str,
    ctx: Ctx,
    caller: Caller,
    flt: Filter,
) -> StreamingResponse:
    """The same entries as CSV, streamed."""
    entries = history.export_history(ctx, caller, team_id, flt)
    return downloads.history_csv(entries, team_id, ctx.clock.now())
