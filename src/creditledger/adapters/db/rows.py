"""Row ↔ domain object conversion."""

from __future__ import annotations

from typing import Any

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
