"""Row ↔ domain object conversion."""

from __future__ import annotations

import functools
import json
from typing import Any

from creditledger.adapters.db.types import from_micros
from creditledger.domain.accounts import BillingMode, Team
from creditledger.domain.grants import Grant, GrantKind, GrantSource, Scope


def scope_to_json(scope: Scope | None) -> dict[str, list[str]] | None:
    return None if scope is None else scope.to_dict()


def scope_from_json(raw: dict[str, list[str]] | None) -> Scope | None:
    if not raw:
        return None
    return Scope(
        products=frozenset(raw["products"]) if "products" in raw else None,
        models=frozenset(raw["models"]) if "models" in raw else None,
        gpus=frozenset(raw["gpus"]) if "gpus" in raw else None,
    )


def grant_from_row(row: Any) -> Grant:
    return Grant(
        id=row.id,
        team_id=row.team_id,
        kind=GrantKind(row.kind),
        source=GrantSource(row.source),
        amount=row.amount_nanos,
        remaining=row.remaining_nanos,
        scope=scope_from_json(row.scope),
        effective_at=row.effective_at,
        expires_at=row.expires_at,
        voided_at=row.voided_at,
        created_at=row.created_at,
    )


def grant_to_row(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "team_id": grant.team_id,
        "kind": grant.kind.value,
        "source": grant.source.value,
        "amount_nanos": grant.amount,
        "remaining_nanos": grant.remaining,
        "scope": scope_to_json(grant.scope),
        "is_scoped": grant.scope is not None,
        "effective_at": grant.effective_at,
        "expires_at": grant.expires_at,
        "voided_at": grant.voided_at,
        "created_at": grant.created_at,
    }


def team_from_row(row: Any) -> Team:
    return Team(
        id=row.id,
        name=row.name,
        billing_mode=BillingMode(row.billing_mode),
        tier_level_override=row.tier_level_override,
        lifetime_paid=row.lifetime_paid_nanos,
        unpaid=row.unpaid_nanos,
        created_at=row.created_at,
        revision=row.revision,
    )


GRANT_COLUMNS = (
    "id, team_id, kind, source, amount_nanos, remaining_nanos, CAST(scope AS TEXT), "
    "effective_at, expires_at, voided_at, created_at"
)
"""The scope comes back as its JSON text on both databases, decoded once per text."""
_KINDS = {k.value: k for k in GrantKind}
_SOURCES = {s.value: s for s in GrantSource}


def grant_from_tuple(r: tuple[Any, ...]) -> Grant:
    """A grant from a raw driver row in the order of ``GRANT_COLUMNS``."""
    return Grant(
        id=r[0],
        team_id=r[1],
        kind=_KINDS[r[2]],
        source=_SOURCES[r[3]],
        amount=r[4],
        remaining=r[5],
        scope=None if r[6] is None else _scope_of_text(r[6]),
        effective_at=from_micros(r[7]),
        expires_at=from_micros(r[8]) if r[8] is not None else None,
        voided_at=from_micros(r[9]) if r[9] is not None else None,
        created_at=from_micros(r[10]),
    )


@functools.lru_cache(maxsize=4096)
def _scope_of_text(text: str) -> Scope | None:
    """Scopes repeat across grants (a campaign's, a model's), and a :class:`Scope` is
    immutable: each distinct text is decoded once."""
    return scope_from_json(json.loads(text))


def team_from_tuple(r: tuple[Any, ...]) -> Team:
    return Team(
        id=r[0],
        name=r[1],
        billing_mode=BillingMode(r[2]),
        tier_level_override=r[3],
        lifetime_paid=r[4],
        unpaid=r[5],
        created_at=from_micros(r[6]),
        revision=r[7],
    )
