"""May this team make another request? (SPEC §6, POST /v1/authorize)

The decision needs the team's billing state and its grants. Both are cached in
this process per team and reused while the team's ``revision`` is unchanged; the
revision is bumped in the database by every write that can change a decision, so
one primary-key read keeps every process correct. Requests per minute are counted
by the shared rate limiter (Redis when configured, so all processes share it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.accounts import BillingMode, Principal, Team
from creditledger.domain.consumption import is_eligible
from creditledger.domain.errors import NotFound
from creditledger.domain.grants import Grant, UsageScope
from creditledger.domain.tiers import DEFAULT_TIERS, Tier, tier_for
from creditledger.services.context import Context
from creditledger.services.usage import require_service

RATE_WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    tier: Tier
    available: int
    retry_after_seconds: int | None = None


def available_for(grants: list[Grant], usage: UsageScope, at: datetime) -> int:
    return sum(g.remaining for g in grants if is_eligible(g, g.remaining, usage, at))


def decide(
    team: Team,
    grants: list[Grant],
    usage: UsageScope,
    at: datetime,
    tiers: tuple[Tier, ...] = DEFAULT_TIERS,
) -> tuple[Tier, int, bool]:
    """(tier, available credit for this usage, has the credit side allowed it)."""
    tier = tier_for(team.lifetime_paid, team.tier_level_override, tiers)
    available = available_for(grants, usage, at)
    allowed = team.billing_mode is BillingMode.PAY_AS_YOU_GO or available > 0
    return tier, available, allowed


class Authorizer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._cache: dict[str, tuple[int, list[Grant]]] = {}
        self._lock = threading.Lock()

    def authorize(self, principal: Principal, team_id: str, usage: UsageScope) -> Decision:
        require_service(principal)
        team, grants = self._load(team_id)
        now = self.ctx.clock.now()
        tier, available, allowed = decide(team, grants, usage, now, self.ctx.settings.tier_table)
        if not allowed:
            return Decision(False, "insufficient_credits", tier, available)
        limiter = self.ctx.rate_limiter
        key = f"authorize:{team_id}"
        if not limiter.hit(key, tier.requests_per_minute, RATE_WINDOW_SECONDS):
            retry = limiter.retry_after(key, tier.requests_per_minute, RATE_WINDOW_SECONDS)
            return Decision(False, "rate_limited", tier, available, retry)
        return Decision(True, "ok", tier, available)

    def _load(self, team_id: str) -> tuple[Team, list[Grant]]:
        with self.ctx.uow(write=False) as uow:
            team = uow.teams.get(team_id)
            if team is None:
                raise NotFound("No team with this id.")
            cached = self._cache.get(team_id)
            if cached is not None and cached[0] == team.revision:
                return team, cached[1]
            grants = uow.grants.for_team(team_id)
        with self._lock:
            self._cache[team_id] = (team.revision, grants)
        return team, grants
