"""Builders of domain objects: ``grant("promo", "5.00", expires="2026-12-01")``."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from creditledger.domain.grants import Grant, GrantKind, GrantSource, Scope
from creditledger.domain.ids import make_id
from creditledger.domain.money import dollars
from tests.helpers import at

T0 = at("2026-11-01")
"""Default ``effective_at``: before every ``NOW`` the unit tests use."""

_ids = itertools.count(1)


def grant_id(n: int) -> str:
    """A well-formed grant id; a larger ``n`` sorts later."""
    return make_id("grant", 1_790_000_000_000 + n, bytes(10))


def scope(
    products: Iterable[str] | None = None,
    models: Iterable[str] | None = None,
    gpus: Iterable[str] | None = None,
) -> Scope:
    return Scope(
        products=frozenset(products) if products is not None else None,
        models=frozenset(models) if models is not None else None,
        gpus=frozenset(gpus) if gpus is not None else None,
    )


def grant(
    kind: str = "promo",
    amount: str = "5.00",
    *,
    id: str | None = None,
    remaining: str | None = None,
    expires: str | None = None,
    effective: str | None = None,
    scoped: Scope | None = None,
    voided: str | None = None,
    team_id: str = "team_test",
) -> Grant:
    """A grant in one line. ``kind`` is ``"promo"`` or ``"prepaid"``; times as for :func:`at`."""
    grant_kind = GrantKind.PROMOTIONAL if kind == "promo" else GrantKind.PREPAID
    return Grant(
        id=id or grant_id(next(_ids)),
        team_id=team_id,
        kind=grant_kind,
        source=GrantSource.MANUAL if grant_kind is GrantKind.PROMOTIONAL else GrantSource.PURCHASE,
        amount=dollars(amount),
        remaining=dollars(remaining if remaining is not None else amount),
        scope=scoped,
        effective_at=at(effective) if effective else T0,
        expires_at=at(expires) if expires else None,
        voided_at=at(voided) if voided else None,
        created_at=T0,
    )


def ids(grants: Iterable[Grant]) -> list[str]:
    return [g.id for g in grants]
