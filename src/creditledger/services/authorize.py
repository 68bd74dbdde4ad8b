"""May this team make another request? (POST /v1/authorize)

The decision needs the team's billing state, its grants, its custom prices and the
price book. The team's grants and custom prices are cached in this process per team
and reused while the team's ``revision`` is unchanged; the revision is bumped in the
database by every write that can change a decision. The price book is the process's
copy that usage pricing uses, checked against the newest version id, which comes in
the same read as the team row: one primary-key read keeps every process correct.
Requests per minute are counted by the shared rate limiter (Redis when configured,
so all processes share it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.accounts import BillingMode, Principal, Team
from creditledger.domain.availability import usable_credit
from creditledger.domain.errors import NotFound, UnknownPrice
from creditledger.domain.grants import Grant, UsageScope
from creditledger.domain.money import Nanos
from creditledger.domain.pricing import (
    PriceBook,
    TeamPricing,
    check_billable,
    effective,
    effective_team,
)
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


@dataclass(frozen=True, slots=True)
class CreditDecision:
    """What the team's credit and tier say, before pricing and the rate limit."""

    tier: Tier
    available: Nanos
    """Credit usable for this usage now."""
    allowed: bool
    """Pay-as-you-go, or some usable credit left."""


def decide(
    team: Team,
    grants: list[Grant],
    usage: UsageScope,
    at: datetime,
    tiers: tuple[Tier, ...] = DEFAULT_TIERS,
) -> CreditDecision:
    """The credit side of an authorization: tier, usable credit, and whether it allows."""
    available = usable_credit(grants, usage, at)
    return CreditDecision(
        tier=tier_for(team.lifetime_paid, team.tier_level_override, tiers),
        available=available,
        allowed=team.billing_mode is BillingMode.PAY_AS_YOU_GO or available > 0,
    )


def refusal_for_pricing(
    usage: UsageScope, books: list[PriceBook], team_pricing: list[TeamPricing], at: datetime
) -> str | None:
    """``unknown_product`` or ``unknown_model`` when usage priced at ``at`` would be
    rejected (the rule of usage pricing, :func:`check_billable`); None when billable."""
    try:
        check_billable(
            usage.product,
            usage.model,
            usage.gpu,
            effective(books, at),
            effective_team(team_pricing, at),
        )
    except UnknownPrice as exc:
        return exc.code
    return None


@dataclass(frozen=True, slots=True)
class _TeamState:
    revision: int
    grants: list[Grant]
    pricing: list[TeamPricing]


class Authorizer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._cache: dict[str, _TeamState] = {}
        self._lock = threading.Lock()

    def authorize(self, principal: Principal, team_id: str, usage: UsageScope) -> Decision:
        require_service(principal)
        team, state, books = self._load(team_id)
        now = self.ctx.clock.now()
        credit = decide(team, state.grants, usage, now, self.ctx.settings.tier_table)
        tier, available = credit.tier, credit.available
        unbillable = refusal_for_pricing(usage, books, state.pricing, now)
        if unbillable is not None:
            return Decision(False, unbillable, tier, available)
        if not credit.allowed:
            return Decision(False, "insufficient_credits", tier, available)
        limiter = self.ctx.rate_limiter
        key = f"authorize:{team_id}"
        if not limiter.hit(key, tier.requests_per_minute, RATE_WINDOW_SECONDS):
            retry = limiter.retry_after(key, tier.requests_per_minute, RATE_WINDOW_SECONDS)
            return Decision(False, "rate_limited", tier, available, retry)
        return Decision(True, "ok", tier, available)

    def _load(self, team_id: str) -> tuple[Team, _TeamState, list[PriceBook]]:
        with self.ctx.uow(write=False) as uow:
            found = uow.teams.get_with_price_version(team_id)
            if found is None:
                raise NotFound("No team with this id.")
            team, price_version = found
            books = self.ctx.price_books.at_version(uow, price_version)
            cached = self._cache.get(team_id)
            if cached is not None and cached.revision == team.revision:
                return team, cached, books
            state = _TeamState(
                team.revision,
                uow.grants.for_team(team_id),
                uow.pricing.for_teams([team_id]).get(team_id, []),
            )
        with self._lock:
            self._cache[team_id] = state
        return team, state, books
