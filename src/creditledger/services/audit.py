"""The operator audit log: writing it, and reading it (operators only).

An operator's action is written in the action's own transaction, so the log holds
exactly what was done: an action that fails leaves no row, one that commits always
has its row. A read of a team's billing has no transaction to share; its row is
committed in one of its own before the data is returned, so nothing an operator was
shown is missing from the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.audit import (
    AuditAction,
    AuditEvent,
    AuditFilter,
    JsonValue,
    decode_cursor,
    encode_cursor,
)
from creditledger.domain.ids import is_id
from creditledger.domain.throttle import MAX_CLIENT_LENGTH
from creditledger.services.access import require_operator
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork


def record(
    uow: UnitOfWork,
    ctx: Context,
    principal: Principal,
    action: AuditAction,
    team_id: str | None = None,
    detail: Mapping[str, JsonValue] | None = None,
) -> None:
    """Append the principal's action to the log, inside the caller's unit of work."""
    uow.audit.record(
        AuditEvent(
            id=uow.new_id("audit"),
            at=ctx.clock.now(),
            actor=principal.token_id,
            actor_name=principal.name,
            action=action.value,
            team_id=team_id,
            client=principal.client[:MAX_CLIENT_LENGTH] if principal.client else None,
            detail=dict(detail or {}),
        )
    )


def record_read(
    ctx: Context,
    principal: Principal,
    action: AuditAction,
    team_id: str | None,
    detail: Mapping[str, JsonValue] | None = None,
) -> None:
    """An operator's read, committed on its own. Reads by anyone else are not logged."""
    if principal.kind is not TokenKind.OPERATOR:
        return
    with ctx.uow() as uow:
        record(uow, ctx, principal, action, team_id, detail)
        uow.commit()


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None


def list_audit_events(
    ctx: Context, principal: Principal, flt: AuditFilter, limit: int, cursor: str | None
) -> AuditPage:
    """Matching events, newest first (operators only). The read is itself logged."""
    require_operator(principal)
    codec = ctx.cursors()
    before = decode_cursor(codec, flt, cursor) if cursor is not None else None
    with ctx.uow(write=False) as uow:
        rows = uow.audit.page(flt, before, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    record_read(
        ctx,
        principal,
        AuditAction.AUDIT_EVENTS_READ,
        flt.team_id if flt.team_id is not None and is_id(flt.team_id, "team") else None,
        {
            "team_id": flt.team_id,
            "actor": flt.actor,
            "since": flt.since.isoformat() if flt.since is not None else None,
            "next_page": cursor is not None,
        },
    )
    return AuditPage(page, encode_cursor(codec, flt, page[-1].seq) if more else None)
