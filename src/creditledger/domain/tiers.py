"""Rate-limit tiers from lifetime paid amount."""

from __future__ import annotations

from dataclasses import dataclass

from creditledger.domain.money import NANOS_PER_DOLLAR, Nanos


@dataclass(frozen=True, slots=True)
class Tier:
    level: int
    reached_at: Nanos | None
    """Lifetime paid (nanos) that reaches this tier; ``None``: set by operators only."""
    requests_per_minute: int
    max_output_tokens: int


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier(0, 0, 20, 8_192),
    Tier(1, 10 * NANOS_PER_DOLLAR, 100, 16_384),
    Tier(2, 50 * NANOS_PER_DOLLAR, 1_000, 16_384),
    Tier(3, 500 * NANOS_PER_DOLLAR, 5_000, 32_768),
    Tier(4, 5_000 * NANOS_PER_DOLLAR, 10_000, 65_536),
    Tier(5, None, 50_000, 131_072),
)


def tier_for(
    lifetime_paid: Nanos, override: int | None, table: tuple[Tier, ...] = DEFAULT_TIERS
) -> Tier:
    """The operator's override if set, else the highest tier the paid amount reaches."""
    if override is not None:
        return next(t for t in table if t.level == override)
    best = table[0]
    for tier in table:
        if tier.reached_at is not None and lifetime_paid >= tier.reached_at:
            best = tier
    return best


def next_tier(current: Tier, table: tuple[Tier, ...] = DEFAULT_TIERS) -> Tier | None:
    """The next tier a payment can reach from ``current``, or None at the top."""
    for tier in table:
        if tier.level > current.level and tier.reached_at is not None:
            return tier
    return None


def next_level_at(current: Tier, table: tuple[Tier, ...] = DEFAULT_TIERS) -> Nanos | None:
    """Lifetime paid that reaches the next self-serve tier, or None at the top."""
    following = next_tier(current, table)
    return None if following is None else following.reached_at
