"""The expiry job: write off what is left of grants once their late-arrival window
has passed. Safe to run twice at once: each grant is re-read under its
team's lock and only written off while it still has remaining credit."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from creditledger.domain import ledger
from creditledger.domain.availability import expiry_due, late_arrival_cutoff
from creditledger.services import notices
from creditledger.services.context import Context

BATCH = 500


def expire_credits(ctx: Context, at: datetime | None = None) -> int:
    """Write off expired grants whose window closed by ``at`` (default now). Returns how many."""
    now = at or ctx.clock.now()
    cutoff = late_arrival_cutoff(now, timedelta(seconds=ctx.settings.late_arrival_window_seconds))
    done = 0
    while True:
        with ctx.uow(write=False) as uow:
            due = uow.grants.due_for_expiry(cutoff, BATCH)
        if not due:
            return done
        by_team: dict[str, set[str]] = defaultdict(set)
        for team_id, grant_id in due:
            by_team[team_id].add(grant_id)
        written = 0
        for team_id, grant_ids in sorted(by_team.items()):
            written += _expire_team(ctx, team_id, grant_ids, cutoff, now)
        done += written
        if len(due) < BATCH or written == 0:
            return done


def _expire_team(
    ctx: Context, team_id: str, grant_ids: set[str], cutoff: datetime, now: datetime
) -> int:
    with ctx.uow() as uow:
        uow.teams.lock(team_id)
        txs = []
        lost = 0
        grants = uow.grants.for_team(team_id)
        for grant in grants:
            if grant.id in grant_ids and expiry_due(grant, cutoff):
                assert grant.expires_at is not None  # a grant that never expires is never due
                tx = ledger.write_off(
                    grant,
                    grant.remaining,
                    ledger.EntryType.EXPIRY,
                    grant.expires_at,
                    "Credit expired",
                )
                txs.append((uow.new_id("txn"), tx))
                notices.grant_expired(uow, ctx, grant, grant.remaining, now)
                lost += grant.remaining
        uow.ledger.post_many(txs, now)
        if txs:
            notices.low_balance_after(uow, ctx, {team_id: grants}, now, {team_id: lost})
        uow.commit()
    return len(txs)
