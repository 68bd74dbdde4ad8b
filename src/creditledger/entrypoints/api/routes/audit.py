"""The operator audit log: every operator action and read of a team's billing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from creditledger.domain.audit import AuditFilter
from creditledger.entrypoints.api.deps import Caller, Ctx, Cursor, Limit
from creditledger.entrypoints.api.schemas import AuditEventPage, Instant, audit_event_public
from creditledger.services.audit import list_audit_events

router = APIRouter(prefix="/v1", tags=["operators"])


@router.get("/audit-events")
def audit_events(
    ctx: Ctx,
    caller: Caller,
    team_id: Annotated[str | None, Query(max_length=64, description="Only this team's")] = None,
    actor: Annotated[
        str | None, Query(max_length=255, description="Only this operator token's (its id)")
    ] = None,
    since: Annotated[Instant | None, Query(description="At or after this time")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AuditEventPage:
    """Operators only, newest first. Reading the log is itself recorded in it."""
    flt = AuditFilter(team_id=team_id, actor=actor, since=since)
    result = list_audit_events(ctx, caller, flt, limit, cursor)
    return AuditEventPage(
        data=[audit_event_public(e) for e in result.events], next_cursor=result.next_cursor
    )
