"""Operators set a team's billing mode and tier (SPEC §6)."""

from __future__ import annotations

from creditledger.domain.accounts import BillingMode, Principal, Team
from creditledger.services.access import Need, check_team_access
from creditledger.services.context import Context


def set_billing_settings(
    ctx: Context,
    principal: Principal,
    team_id: str,
    mode: BillingMode | None,
    *,
    set_tier: bool,
    tier_level: int | None,
) -> Team:
    """``mode`` None keeps the mode. With ``set_tier``, ``tier_level`` becomes the
    override (None clears it and the tier follows lifetime paid again)."""
    with ctx.uow() as uow:
        team, _ = check_team_access(uow, principal, team_id, Need.OPERATOR, lock=True)
        override = tier_level if set_tier else team.tier_level_override
        uow.teams.set_billing(team_id, mode or team.billing_mode, override)
        updated = uow.teams.get(team_id)
        uow.commit()
    assert updated is not None
    return updated
