"""The order of consumption and the allocation of a charge across grants.

This module is the one definition of the order. The database query that loads
grants for a charge sorts by the same keys (``adapters/db/repositories.py``) and an
integration test checks that both agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from creditledger.domain.availability import is_usable
from creditledger.domain.grants import Grant, GrantKind, UsageScope
from creditledger.domain.money import Nanos
from creditledger.domain.values import Value

_NEVER = datetime.max.replace(tzinfo=UTC)


class _Descending:
    """Wraps a string so that it sorts in reverse: the order's last key puts smaller ids last."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return self.value > other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def consumption_order_key(grant: Grant) -> tuple[Any, ...]:
    """The total order of consumption, first key first:

    1. promotional before prepaid;
    2. with an expiry date before without;
    3. limited scope before unlimited;
    4. earlier ``expires_at`` first;
    5. earlier ``effective_at`` first;
    6. smaller grant id last.
    """
    return (
        grant.kind is not GrantKind.PROMOTIONAL,
        grant.expires_at is None,
        grant.scope is None,
        grant.expires_at or _NEVER,
        grant.effective_at,
        _Descending(grant.id),
    )


def in_consumption_order(grants: Iterable[Grant]) -> list[Grant]:
    return sorted(grants, key=consumption_order_key)


def is_eligible(grant: Grant, remaining: Nanos, usage: UsageScope, at: datetime) -> bool:
    """May this grant pay for usage of ``usage`` scope at time ``at``? (The rule is
    :func:`creditledger.domain.availability.is_usable`.)"""
    return is_usable(grant, usage, at, remaining)


class Allocation(Value, frozen=True):
    """How one charge is paid: ``draws`` in order as (grant id, nanos), the rest uncovered."""

    draws: tuple[tuple[str, Nanos], ...]
    uncovered: Nanos

    @property
    def covered(self) -> Nanos:
        return sum(n for _, n in self.draws)


def allocate(
    grants: Iterable[Grant],
    charge: Nanos,
    usage: UsageScope,
    at: datetime,
    remaining: Mapping[str, Nanos] | None = None,
    *,
    presorted: bool = False,
) -> Allocation:
    """Split ``charge`` nanos across the eligible grants in consumption order.

    ``remaining`` overrides the grants' own ``remaining`` (callers charging a batch
    keep the live figures there). Each eligible grant is drained before the next is
    touched; what no grant covers is ``uncovered`` (the team's unpaid balance).
    ``presorted`` skips the sort when the caller already holds the grants sorted by
    :func:`consumption_order_key`.
    """
    if charge < 0:
        raise ValueError("a charge is never negative")
    left = charge
    draws: list[tuple[str, Nanos]] = []
    for grant in grants if presorted else in_consumption_order(grants):
        if left == 0:
            break
        have = grant.remaining if remaining is None else remaining.get(grant.id, 0)
        if not is_eligible(grant, have, usage, at):
            continue
        take = min(have, left)
        draws.append((grant.id, take))
        left -= take
    return Allocation(draws=tuple(draws), uncovered=left)


def order_can_matter(grants: Iterable[Grant], start: datetime, end: datetime) -> bool:
    """Could charging usage from ``start`` to ``end`` in another order change what
    each grant pays? Not when every grant is eligible for all of it alike: unlimited
    scope, and no grant starting or ending in between. Then greedy allocation in the
    one order of consumption leaves each grant the same, whatever the order of the usage."""
    for grant in grants:
        if grant.voided_at is not None:
            continue
        if grant.scope is not None:
            return True
        if start < grant.effective_at <= end:
            return True
        if grant.expires_at is not None and start < grant.expires_at <= end:
            return True
    return False
