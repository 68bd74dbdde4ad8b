"""The credit history: every posting to a team's own accounts, newest first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from creditledger.domain.accounts import Principal
from creditledger.domain.audit import AuditAction, JsonValue
from creditledger.domain.history import HistoryEntry, HistoryFilter, decode_cursor, encode_cursor
from creditledger.domain.periods import check_period
from creditledger.services import audit
from creditledger.services.access import Need, check_team_read
from creditledger.services.context import Context

EXPORT_PAGE = 1000


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next_cursor: str | None


def credit_history(
    ctx: Context,
    principal: Principal,
    team_id: str,
    flt: HistoryFilter,
    limit: int,
    cursor: str | None,
) -> HistoryPage:
    check_period(flt.since, flt.until)
    codec = ctx.cursors()
    before = decode_cursor(codec, team_id, cursor) if cursor is not None else None
    with ctx.uow(write=False) as uow:
        check_team_read(uow, principal, team_id, Need.BILLING_READ)
        rows = uow.ledger.history(team_id, flt, before, limit + 1)
    audit.record_read(
        ctx, principal, AuditAction.CREDIT_HISTORY_READ, team_id, _filter_detail(flt, cursor)
    )
    page = rows[:limit]
    more = len(rows) > limit
    return HistoryPage(page, encode_cursor(codec, team_id, page[-1].seq) if more else None)


def export_history(
    ctx: Context, principal: Principal, team_id: str, flt: HistoryFilter
) -> Iterator[HistoryEntry]:
    """Every matching entry, read in pages so memory stays flat however long the history.

    Access is checked before the first entry is produced.
    """
    check_period(flt.since, flt.until)
    with ctx.uow(write=False) as uow:
        check_team_read(uow, principal, team_id, Need.BILLING_READ)
    audit.record_read(
        ctx, principal, AuditAction.CREDIT_HISTORY_EXPORT, team_id, _filter_detail(flt, None)
    )

    def entries() -> Iterator[HistoryEntry]:
        before: int | None = None
        while True:
            with ctx.uow(write=False) as uow:
                rows = uow.ledger.history(team_id, flt, before, EXPORT_PAGE)
            yield from rows
            if len(rows) < EXPORT_PAGE:
                return
            before = rows[-1].seq

    return entries()


def _filter_detail(flt: HistoryFilter, cursor: str | None) -> dict[str, JsonValue]:
    return {
        "type": flt.type.value if flt.type else None,
        "kind": flt.kind.value if flt.kind else None,
        "since": flt.since.isoformat() if flt.since else None,
        "until": flt.until.isoformat() if flt.until else None,
        "next_page": cursor is not None,
    }
