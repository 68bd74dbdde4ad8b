"""Checking and spending budgets of attempts (``domain/throttle.py``) on the rate limiter.

A failure-only budget is checked before the attempt and spent after it fails, so
successes never count. Where a lock serialises the attempts (a team's row lock for
redemptions) the check is exact; elsewhere a burst of simultaneous attempts can pass
the check together, so a budget may be overrun by at most the attempts in flight at
that moment (docs/decisions/0006).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from creditledger.domain.errors import TooManyAttempts
from creditledger.domain.throttle import Budget
from creditledger.services.context import Context

Message = Callable[[Budget, int], str]
"""The words for a refusal: the budget that ran out and the seconds to wait."""


def check_budgets(ctx: Context, budgets: Sequence[Budget], message: Message) -> None:
    """Refuse with ``TooManyAttempts`` when any budget is spent; counts nothing.

    With several spent, the one with the longest wait answers (its ``Retry-After`` is
    the earliest time every budget allows another attempt).
    """
    limiter = ctx.rate_limiter
    waits = [
        (max(1, limiter.retry_after(b.key, b.limit, b.window_seconds)), b)
        for b in budgets
        if not limiter.test(b.key, b.limit, b.window_seconds)
    ]
    if waits:
        wait, budget = max(waits, key=lambda pair: pair[0])
        raise TooManyAttempts(message(budget, wait), retry_after=wait)


def spend(ctx: Context, budgets: Sequence[Budget]) -> None:
    """Count one failed attempt against every budget."""
    for b in budgets:
        ctx.rate_limiter.hit(b.key, b.limit, b.window_seconds)


def take(ctx: Context, budget: Budget, message: Message) -> None:
    """Count this attempt, in one step, or refuse it when the budget is spent: exact
    under any burst, for budgets where every attempt counts (sign-ups)."""
    limiter = ctx.rate_limiter
    if not limiter.hit(budget.key, budget.limit, budget.window_seconds):
        wait = max(1, limiter.retry_after(budget.key, budget.limit, budget.window_seconds))
        raise TooManyAttempts(message(budget, wait), retry_after=wait)
