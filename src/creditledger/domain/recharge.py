"""Auto-recharge: the settings rule and the decision to charge.

When a team's available credit falls below ``threshold``, one off-session charge
brings it back to ``restore_to``. The charge is whole cents, at least the
minimum purchase, and the month's recharges never exceed the monthly cap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from creditledger.domain.errors import InvalidAmount
from creditledger.domain.money import NANOS_PER_CENT, NANOS_PER_DOLLAR, Nanos, format_amount

MIN_GAP: Nanos = 10 * NANOS_PER_DOLLAR
"""``restore_to`` must be at least this much above ``threshold``."""


class RechargeStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AutoRecharge:
    """A team's auto-recharge settings. ``disabled_reason`` says why it was turned off."""

    enabled: bool
    threshold: Nanos
    restore_to: Nanos
    disabled_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Recharge:
    """One off-session charge started by auto-recharge (built by keyword only)."""

    id: str
    team_id: str
    amount: Nanos
    status: RechargeStatus
    created_at: datetime
    provider_payment_id: str | None = None
    """None until the provider reports the payment."""
    failure_reason: str | None = None
    """Why it failed; None unless ``failed``."""


def check_settings(threshold: Nanos, restore_to: Nanos, maximum: Nanos) -> None:
    """``restore_to`` ≥ ``threshold`` + $10 and no more than the largest purchase."""
    if restore_to < threshold + MIN_GAP:
        raise InvalidAmount(
            f"`restore_to` must be at least {format_amount(MIN_GAP)} dollars above `threshold`.",
            param="restore_to",
        )
    if restore_to > maximum:
        raise InvalidAmount(
            f"`restore_to` can be at most {format_amount(maximum)} dollars.", param="restore_to"
        )


def recharge_amount(
    settings: AutoRecharge,
    available: Nanos,
    charged_this_month: Nanos,
    monthly_cap: Nanos,
    minimum: Nanos,
) -> Nanos | None:
    """Nanos to charge now, or None when no recharge is due.

    The amount restores ``restore_to``, rounded up to a whole cent and never below
    ``minimum``. A charge that would take the month's recharges over
    ``monthly_cap`` is not made at all: the cap stops a runaway, it does not
    shrink top-ups into many small ones.
    """
    if not settings.enabled or available >= settings.threshold:
        return None
    missing = settings.restore_to - available
    amount = max(-(-missing // NANOS_PER_CENT) * NANOS_PER_CENT, minimum)
    if charged_this_month + amount > monthly_cap:
        return None
    return amount


def month_start(at: datetime) -> datetime:
    """The start of ``at``'s calendar month, UTC: the monthly cap's period."""
    at = at.astimezone(UTC)
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
