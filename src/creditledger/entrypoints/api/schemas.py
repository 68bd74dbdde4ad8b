"""Request bodies (``XCreate``) and the renderers of answers (``x_public``).

Money fields are typed ``Money``: any JSON value is let through to
``domain.money.parse_amount`` so that a JSON number or a boolean is refused with
``invalid_amount`` rather than a generic type error. The OpenAPI document still
says they are decimal strings.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
)

from creditledger.domain.accounts import BillingMode, Member, Role, Team
from creditledger.domain.grants import Grant
from creditledger.domain.history import HistoryEntry
from creditledger.domain.money import format_amount
from creditledger.domain.promo_codes import PromoCode
from creditledger.domain.purchases import Purchase
from creditledger.services.billing import Balance
from creditledger.services.billing_settings import BillingSettings
from creditledger.services.recharge import AutoRechargeView

Money = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]+(\.[0-9]{1,9})?$",
            "description": 'US dollars as a decimal string, e.g. "10.00"',
            "examples": ["10.00"],
        }
    ),
]


_RFC3339_START = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}")


def _rfc3339_text(value: object) -> object:
    # Left alone, pydantic would also read a JSON number (or a string of digits) as
    # Unix seconds; the API takes times only as RFC 3339 text.
    if isinstance(value, str) and _RFC3339_START.match(value):
        return value
    raise ValueError("must be an RFC 3339 time with a zone, such as 2026-12-01T00:00:00Z")


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
"""A time in a body or query: RFC 3339 text with a zone, nothing else."""


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class SignupCreate(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=256)
    team_name: str = Field(max_length=200)


class LoginCreate(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=256)


class TeamCreate(Body):
    name: str = Field(max_length=200)


class MemberCreate(Body):
    email: str = Field(max_length=320)
    role: Role = Role.MEMBER


class MemberUpdate(Body):
    role: Role


class ScopeBody(Body):
    products: list[Literal["serverless", "dedicated", "container"]] | None = None
    models: list[str] | None = None
    gpus: list[str] | None = None


class GrantCreate(Body):
    amount: Money
    scope: ScopeBody | None = None
    effective_at: Instant | None = None
    expires_at: Instant | None = None
    note: str = Field(max_length=500)


class AuthorizeCreate(Body):
    team_id: str = Field(max_length=64)
    product: Literal["serverless", "dedicated", "container"]
    model: str = Field(max_length=128)
    gpu: str | None = Field(default=None, max_length=128)


class PriceBody(Body):
    product: Literal["serverless", "dedicated", "container"]
    model: str | None = Field(default=None, max_length=128)
    gpu: str | None = Field(default=None, max_length=128)
    meter: str = Field(max_length=64)
    unit_price: Money
    per_units: int = Field(ge=1, le=10**12, strict=True)


class TeamPricingBody(Body):
    prices: list[PriceBody] | None = None
    discount_percent: Annotated[
        Any, WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,3}(\.[0-9]{1,2})?$"})
    ] = None
    effective_from: AwareDatetime | None = None


def iso(value: datetime | None) -> str | None:
    """Every time leaves the API in UTC (``…Z``), whatever zone it came in with."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(value: int | None) -> str | None:
    return None if value is None else format_amount(value)


def team_public(team: Team, role: Role | None) -> dict[str, Any]:
    return {"id": team.id, "name": team.name, "role": role.value if role else None}


def member_public(member: Member) -> dict[str, Any]:
    return {
        "user_id": member.user_id,
        "email": member.email,
        "role": member.role.value,
        "joined_at": iso(member.created_at),
    }


def grant_public(grant: Grant, now: datetime) -> dict[str, Any]:
    return {
        "id": grant.id,
        "kind": grant.kind.value,
        "source": grant.source.value,
        "amount": money(grant.amount),
        "remaining": money(grant.remaining),
        "scope": grant.scope.to_dict() if grant.scope is not None else None,
        "effective_at": iso(grant.effective_at),
        "expires_at": iso(grant.expires_at),
        "voided_at": iso(grant.voided_at),
        "status": grant.status_at(now).value,
        "created_at": iso(grant.created_at),
    }


def balance_public(balance: Balance) -> dict[str, Any]:
    return {
        "available": {
            "total": money(balance.total),
            "promotional": money(balance.promotional),
            "prepaid": money(balance.prepaid),
        },
        "unpaid_balance": money(balance.team.unpaid),
        "billing_mode": balance.team.billing_mode.value,
        "tier": {
            "level": balance.tier.level,
            "requests_per_minute": balance.tier.requests_per_minute,
            "max_output_tokens": balance.tier.max_output_tokens,
            "next_level_at": money(balance.next_level_at),
        },
        "lifetime_paid": money(balance.team.lifetime_paid),
    }


def history_public(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "type": entry.type.value,
        "occurred_at": iso(entry.occurred_at),
        "amount": money(entry.amount),
        "grant_id": entry.grant_id,
        "kind": entry.kind.value if entry.kind else None,
        "description": entry.description,
        "balance_after": money(entry.balance_after),
        "reference": entry.reference,
    }


HISTORY_COLUMNS = (
    "id",
    "type",
    "occurred_at",
    "amount",
    "grant_id",
    "kind",
    "description",
    "balance_after",
    "reference",
)


def page(data: list[dict[str, Any]], next_cursor: str | None) -> dict[str, Any]:
    return {"data": data, "next_cursor": next_cursor}


class PurchaseCreate(Body):
    amount: Money


class AutoRechargeUpdate(Body):
    enabled: StrictBool
    threshold: Money = None
    restore_to: Money = None


class BillingSettingsUpdate(Body):
    billing_mode: BillingMode | None = None
    tier_level: int | None = Field(default=None, ge=0, le=5)


def purchase_public(purchase: Purchase) -> dict[str, Any]:
    return {
        "id": purchase.id,
        "amount": money(purchase.amount),
        "status": purchase.status.value,
        "checkout_url": purchase.checkout_url,
        "failure_reason": purchase.failure_reason,
        "created_at": iso(purchase.created_at),
    }


def auto_recharge_public(view: AutoRechargeView) -> dict[str, Any]:
    settings = view.settings
    method = view.payment_method
    return {
        "enabled": bool(settings and settings.enabled),
        "threshold": money(settings.threshold) if settings else None,
        "restore_to": money(settings.restore_to) if settings else None,
        "disabled_reason": settings.disabled_reason if settings else None,
        "payment_method_saved": bool(method and method.payment_method_ref),
    }


def billing_settings_public(settings: BillingSettings) -> dict[str, Any]:
    team, tier = settings.team, settings.tier
    return {
        "billing_mode": team.billing_mode.value,
        "tier_level": team.tier_level_override,
        "tier": {
            "level": tier.level,
            "requests_per_minute": tier.requests_per_minute,
            "max_output_tokens": tier.max_output_tokens,
        },
        "lifetime_paid": money(team.lifetime_paid),
    }


StrictCount = Annotated[int, Field(strict=True)]


class PromoCodeCreate(Body):
    """One code with a chosen `code` text, or `count` random codes; the same terms for all."""

    code: str | None = Field(
        default=None, description="Letters, digits, spaces and dashes; matched ignoring case"
    )
    count: StrictCount | None = Field(default=None, description="How many random codes")
    amount: Money
    scope: ScopeBody | None = None
    valid_from: Instant | None = Field(
        default=None, description="Not redeemable before this time (default: now)"
    )
    redeem_by: Instant | None = Field(
        default=None, description="Redeemable until just before this time (exclusive)"
    )
    credit_expires_at: Instant | None = None
    credit_valid_days: StrictCount | None = Field(
        default=None, description="The credit expires this many days after redemption"
    )
    max_redemptions: StrictCount = Field(description="Redemptions allowed in all, per code")


class PromoCodeUpdate(Body):
    disabled: StrictBool


class PromoCodeRedeem(Body):
    code: str


def promo_code_public(code: PromoCode) -> dict[str, Any]:
    return {
        "id": code.id,
        "code": code.display_code,
        "amount": money(code.amount),
        "scope": code.scope.to_dict() if code.scope is not None else None,
        "valid_from": iso(code.valid_from),
        "redeem_by": iso(code.redeem_by),
        "credit_expires_at": iso(code.credit_expires_at),
        "credit_valid_days": code.credit_valid_days,
        "max_redemptions": code.max_redemptions,
        "redemptions": code.redemptions,
        "disabled": code.disabled_at is not None,
        "disabled_at": iso(code.disabled_at),
        "created_at": iso(code.created_at),
    }
