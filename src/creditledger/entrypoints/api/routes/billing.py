"""Balance, credits and credit history (team admins; operators may read)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from creditledger.domain.grants import GrantKind, GrantStatus
from creditledger.domain.history import HistoryFilter
from creditledger.domain.ledger import EntryType
from creditledger.entrypoints.api import downloads
from creditledger.entrypoints.api.deps import Caller, Ctx, Cursor, Limit
from creditledger.entrypoints.api.schemas import (
    BalancePublic,
    GrantPage,
    HistoryPage,
    Instant,
    balance_public,
    grant_public,
    history_public,
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


def _history_filter(
    type: Annotated[EntryType | None, Query()] = None,
    kind: Annotated[GrantKind | None, Query()] = None,
    since: Annotated[Instant | None, Query()] = None,
    until: Annotated[Instant | None, Query()] = None,
) -> HistoryFilter:
    return HistoryFilter(type=type, kind=kind, since=since, until=until)


Filter = Annotated[HistoryFilter, Depends(_history_filter)]


@router.get("/credit-history")
def credit_history(
    team_id: str,
    ctx: Ctx,
    caller: Caller,
    flt: Filter,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> HistoryPage:
    """Every change to the team's credit, newest first, with the balance after it."""
    result = history.credit_history(ctx, caller, team_id, flt, limit, cursor)
    return HistoryPage(
        data=[history_public(e) for e in result.entries], next_cursor=result.next_cursor
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
