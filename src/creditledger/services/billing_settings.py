"""Operators set a team's billing mode and tier."""

from __future__ import annotations

from dataclasses import dataclass

from creditledger.domain.accounts import BillingMode, Principal, Team
from creditledger.domain.audit import AuditAction
from creditledger.domain.errors import InvalidRequest
from creditledger.domain.tiers import Tier, tier_for
from creditledger.services import audit
from creditledger.services.access import Need, check_team_access
from creditledger.services.context import Context


@dataclass(frozen=True, slots=True)
class BillingSettings:
    team: Team
    tier: Tier
    """The tier in force: the override, or the one lifetime paid reaches."""


def set_billing_settings(
    ctx: Context,
    principal: Principal,
    team_id: str,
    mode: BillingMode | None,
    *,
    set_tier: bool,
    tier_level: int | None,
) -> BillingSettings:
    """``mode`` None keeps the mode. With ``set_tier``, ``tier_level`` becomes the
    override (None clears it and the tier follows lifetime paid again)."""
    table = ctx.settings.tier_table
    if set_tier and tier_level is not None and tier_level not in {t.level for t in table}:
        raise InvalidRequest(
            f"`tier_level` must be one of {sorted(t.level for t in table)}.", param="tier_level"
        )
    with ctx.uow() as uow:
        team, _ = check_team_access(uow, principal, team_id, Need.OPERATOR, lock=True)
        override = tier_level if set_tier else team.tier_level_override
        uow.teams.set_billing(team_id, mode or team.billing_mode, override)
        audit.record(
            uow,
            ctx,
            principal,
            AuditAction.BILLING_SETTINGS_SET,
            team_id,
            {
                "billing_mode": (mode or team.billing_mode).value,
                "tier_level_override": override,
                "was_billing_mode": team.billing_mode.value,
                "was_tier_level_override": team.tier_level_override,
            },
        )
        updated = uow.teams.get(team_id)
        uow.commit()
    assert updated is not None
    return BillingSettings(
        updated, tier_for(updated.lifetime_paid, updated.tier_level_override, table)
    )
