"""The team's balance and its credits in consumption order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.accounts import Principal, Team
from creditledger.domain.audit import AuditAction
from creditledger.domain.availability import usable_credit
from creditledger.domain.errors import InvalidCursor, ServiceUnavailable
from creditledger.domain.grants import Grant, GrantKind, GrantStatus
from creditledger.domain.tiers import Tier, next_tier, tier_for
from creditledger.services import audit
from creditledger.services.access import Need, check_team_access
from creditledger.services.context import Context


@dataclass(frozen=True, slots=True)
class Balance:
    team: Team
    promotional: int
    prepaid: int
    tier: Tier
    next_tier: Tier | None
    """The tier the next payments can reach, None at the top."""
    held: int | None = 0
    """Σ the team's open holds (requests in flight; not money); None when the hold
    book does not answer."""

    @property
    def next_level_at(self) -> int | None:
        """Lifetime paid that reaches :attr:`next_tier`."""
        return None if self.next_tier is None else self.next_tier.reached_at

    @property
    def total(self) -> int:
        return self.promotional + self.prepaid


def get_balance(ctx: Context, principal: Principal, team_id: str) -> Balance:
    with ctx.uow(write=False) as uow:
        team, _ = check_team_access(uow, principal, team_id, Need.BILLING_READ)
        grants = uow.grants.for_team(team_id)
    audit.record_read(ctx, principal, AuditAction.BALANCE_READ, team_id)
    now = ctx.clock.now()
    available = {
        kind: usable_credit([g for g in grants if g.kind is kind], None, now) for kind in GrantKind
    }
    table = ctx.settings.tier_table
    tier = tier_for(team.lifetime_paid, team.tier_level_override, table)
    return Balance(
        team=team,
        promotional=available[GrantKind.PROMOTIONAL],
        prepaid=available[GrantKind.PREPAID],
        tier=tier,
        next_tier=next_tier(tier, table),
        held=_held(ctx, team_id, now),
    )


def _held(ctx: Context, team_id: str, now: datetime) -> int | None:
    try:
        return ctx.holds.open_total(team_id, now)
    except ServiceUnavailable:
        return None


CREDITS = "credits"
"""The list name credits cursors are sealed for."""


@dataclass(frozen=True, slots=True)
class CreditsPage:
    grants: list[Grant]
    next_after: str | None
    """The cursor after the last grant shown, when more follow."""


def list_credits(
    ctx: Context,
    principal: Principal,
    team_id: str,
    status: GrantStatus | None,
    limit: int,
    after: str | None,
) -> CreditsPage:
    """The team's grants in consumption order, filtered by status (None: all).

    A grant's place in the order never changes (its keys are immutable), so the
    cursor holds the id of the last grant of the previous page, sealed for this
    team's list (``domain.cursors``).
    """
    codec = ctx.cursors()
    after_id = codec.open(CREDITS, team_id, after).decode() if after is not None else None
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.BILLING_READ)
        grants = uow.grants.for_team(team_id)
    audit.record_read(
        ctx,
        principal,
        AuditAction.CREDITS_READ,
        team_id,
        {"status": status.value if status else None, "next_page": after is not None},
    )
    if after_id is not None:
        ids = [g.id for g in grants]
        if after_id not in ids:
            raise InvalidCursor("`cursor` is not one this API gave out.", param="cursor")
        grants = grants[ids.index(after_id) + 1 :]
    now = ctx.clock.now()
    matching = [g for g in grants if status is None or g.status_at(now) is status]
    page = matching[:limit]
    more = len(matching) > limit
    next_after = codec.seal(CREDITS, team_id, page[-1].id.encode()) if more and page else None
    return CreditsPage(page, next_after)
