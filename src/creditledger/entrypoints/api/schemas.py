"""Request bodies (``XCreate``) and the renderers of answers (``x_public``).

Money fields are typed ``Money``: any JSON value is let through to
``domain.money.parse_amount`` so that a JSON number or a boolean is refused with
``invalid_amount`` rather than a generic type error. The OpenAPI document still
says they are decimal strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
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
from creditledger.domain.audit import AuditEvent
from creditledger.domain.grants import Grant, GrantKind, GrantSource, GrantStatus, Scope
from creditledger.domain.history import HistoryEntry
from creditledger.domain.invoices import AttemptOutcome, Invoice, InvoiceStatus
from creditledger.domain.ledger import EntryType
from creditledger.domain.money import AMOUNT_PATTERN, format_amount
from creditledger.domain.notices import Notice, NoticeState, Webhook
from creditledger.domain.payments import PaymentStatus
from creditledger.domain.pricing import Price, PriceBook, TeamPricing
from creditledger.domain.promo_codes import PromoCode
from creditledger.domain.purchases import Purchase
from creditledger.domain.tiers import Tier
from creditledger.domain.usage_report import UsageRow
from creditledger.services.accounts import Me
from creditledger.services.authorize import Decision
from creditledger.services.billing import Balance
from creditledger.services.billing_settings import BillingSettings
from creditledger.services.invoices import PayResult
from creditledger.services.recharge import AutoRechargeView
from creditledger.services.usage import IngestResult

_MONEY_IN: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[0-9]+(\.[0-9]{1,9})?$",
    "description": 'US dollars as a decimal string, e.g. "10.00"',
    "examples": ["10.00"],
}

Money = Annotated[Any, WithJsonSchema(_MONEY_IN)]
OptionalMoney = Annotated[Any, WithJsonSchema({"anyOf": [_MONEY_IN, {"type": "null"}]})]
"""A money field that may be ``null`` (or left out): "not set"."""


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


ESTIMATE_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "required": ["quantities"],
            "additionalProperties": False,
            "properties": {
                "quantities": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 16,
                    "additionalProperties": {"type": "integer", "minimum": 0},
                    "description": "Meter → expected count, priced as the usage will be",
                }
            },
        },
        {
            "type": "object",
            "required": ["amount"],
            "additionalProperties": False,
            "properties": {"amount": {"type": "string", "pattern": AMOUNT_PATTERN}},
        },
    ],
    "description": "What the request is expected to cost: held until its usage is charged",
}


class AuthorizeCreate(Body):
    team_id: str = Field(max_length=64)
    product: Literal["serverless", "dedicated", "container"]
    model: str = Field(max_length=128)
    gpu: str | None = Field(default=None, max_length=128)
    request_id: str | None = Field(
        default=None,
        max_length=255,
        description="The id its usage event will carry: charging that event ends the hold",
    )
    estimate: Annotated[Any, WithJsonSchema(ESTIMATE_SCHEMA)] = None


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
        Any,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "pattern": r"^[0-9]{1,3}(\.[0-9]{1,2})?$"},
                    {"type": "null"},
                ]
            }
        ),
    ] = None
    effective_from: Instant | None = None


MoneyText = Annotated[
    str,
    Field(
        pattern=r"^-?[0-9]+\.[0-9]{2,9}$",
        description='US dollars as a decimal string, e.g. "10.00" (signed in history)',
        examples=["10.00"],
    ),
]
"""Money leaving the API: a decimal string of dollars with 2 to 9 decimals."""

Timestamp = Annotated[
    str,
    Field(
        json_schema_extra={"format": "date-time"},
        description="RFC 3339, in UTC",
        examples=["2026-11-24T12:00:00Z"],
    ),
]


def instant(value: datetime) -> str:
    """Every time leaves the API in UTC (``…Z``), whatever zone it came in with."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso(value: datetime | None) -> str | None:
    return None if value is None else instant(value)


def money(value: int | None) -> str | None:
    return None if value is None else format_amount(value)


class Public(BaseModel):
    """An answer of the API; every field is always present (``null`` when unset)."""


class ErrorDetail(Public):
    code: str = Field(description="Stable, snake_case; see the API docs' list of codes")
    message: str = Field(description="A sentence a person can act on")
    param: str | None = Field(default=None, description="The field or header at fault")


class ErrorPublic(Public):
    """The body of every 4xx and 5xx answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "invalid_amount",
                        "message": '`amount` must be a decimal string such as "10.00".',
                        "param": "amount",
                    }
                }
            ]
        }
    )

    error: ErrorDetail


class StatusPublic(Public):
    status: str = Field(examples=["ok"])


class CreatedTeamPublic(Public):
    id: str
    name: str


class SignupTeamPublic(CreatedTeamPublic):
    created_at: Timestamp


class TokenPublic(Public):
    token: str = Field(description="A personal API token, shown once: keep it secret")


class TeamPublic(Public):
    id: str
    name: str
    role: Role | None = Field(description="The caller's role; null for an operator")


def team_public(team: Team, role: Role | None) -> TeamPublic:
    return TeamPublic(id=team.id, name=team.name, role=role)


def _unset(value: object) -> bool:
    return value is None


class ScopePublic(Public):
    """Only the dimensions the scope limits are present."""

    products: list[str] | None = Field(default=None, exclude_if=_unset)
    models: list[str] | None = Field(default=None, exclude_if=_unset)
    gpus: list[str] | None = Field(default=None, exclude_if=_unset)


def _scope(scope: Scope | None) -> ScopePublic | None:
    return None if scope is None else ScopePublic.model_validate(scope.to_dict())


class GrantPublic(Public):
    id: str = Field(examples=["grant_3kq9x7m2p4t8w1za"])
    kind: GrantKind
    source: GrantSource
    amount: MoneyText
    remaining: MoneyText
    scope: ScopePublic | None = Field(description="null: usable for anything")
    effective_at: Timestamp
    expires_at: Timestamp | None = Field(description="Exclusive end; null: never")
    voided_at: Timestamp | None
    status: GrantStatus
    created_at: Timestamp


def grant_public(grant: Grant, now: datetime) -> GrantPublic:
    return GrantPublic(
        id=grant.id,
        kind=grant.kind,
        source=grant.source,
        amount=format_amount(grant.amount),
        remaining=format_amount(grant.remaining),
        scope=_scope(grant.scope),
        effective_at=instant(grant.effective_at),
        expires_at=iso(grant.expires_at),
        voided_at=iso(grant.voided_at),
        status=grant.status_at(now),
        created_at=instant(grant.created_at),
    )


class GrantPage(Public):
    data: list[GrantPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class AvailablePublic(Public):
    total: MoneyText
    promotional: MoneyText
    prepaid: MoneyText


class TierLimitsPublic(Public):
    level: int = Field(ge=0, le=5)
    requests_per_minute: int
    max_output_tokens: int


class TierPublic(TierLimitsPublic):
    next_level_at: MoneyText | None = Field(
        description="Lifetime paid that reaches the next tier; null at the top"
    )


def tier_limits_public(tier: Tier) -> TierLimitsPublic:
    return TierLimitsPublic(
        level=tier.level,
        requests_per_minute=tier.requests_per_minute,
        max_output_tokens=tier.max_output_tokens,
    )


class BalancePublic(Public):
    available: AvailablePublic
    held: MoneyText | None = Field(
        description="Open holds of requests in flight (not money); null when unknown"
    )
    unpaid_balance: MoneyText
    billing_mode: BillingMode
    tier: TierPublic
    lifetime_paid: MoneyText


def balance_public(balance: Balance) -> BalancePublic:
    tier = balance.tier
    return BalancePublic(
        available=AvailablePublic(
            total=format_amount(balance.total),
            promotional=format_amount(balance.promotional),
            prepaid=format_amount(balance.prepaid),
        ),
        held=money(balance.held),
        unpaid_balance=format_amount(balance.team.unpaid),
        billing_mode=balance.team.billing_mode,
        tier=TierPublic(
            level=tier.level,
            requests_per_minute=tier.requests_per_minute,
            max_output_tokens=tier.max_output_tokens,
            next_level_at=money(balance.next_level_at),
        ),
        lifetime_paid=format_amount(balance.team.lifetime_paid),
    )


class HistoryEntryPublic(Public):
    id: str
    type: EntryType
    occurred_at: Timestamp
    amount: MoneyText = Field(description="Signed: what this entry added to the balance")
    grant_id: str | None
    kind: GrantKind | None
    description: str
    balance_after: MoneyText = Field(description="The team's available credit after it")
    reference: str | None


def history_public(entry: HistoryEntry) -> HistoryEntryPublic:
    return HistoryEntryPublic(
        id=entry.id,
        type=entry.type,
        occurred_at=instant(entry.occurred_at),
        amount=format_amount(entry.amount),
        grant_id=entry.grant_id,
        kind=entry.kind,
        description=entry.description,
        balance_after=format_amount(entry.balance_after),
        reference=entry.reference,
    )


HISTORY_COLUMNS = tuple(HistoryEntryPublic.model_fields)


def history_page_json(entries: Sequence[HistoryEntry], next_cursor: str | None) -> bytes:
    """A :class:`HistoryPage` of ``entries`` as JSON, without building the models: the
    page is read often and deep, and fifty models validated twice cost more than its
    query. A test pins the two to the same document."""
    return orjson.dumps(
        {
            "data": [
                {
                    "id": e.id,
                    "type": e.type.value,
                    "occurred_at": instant(e.occurred_at),
                    "amount": format_amount(e.amount),
                    "grant_id": e.grant_id,
                    "kind": None if e.kind is None else e.kind.value,
                    "description": e.description,
                    "balance_after": format_amount(e.balance_after),
                    "reference": e.reference,
                }
                for e in entries
            ],
            "next_cursor": next_cursor,
        }
    )


class HistoryPage(Public):
    data: list[HistoryEntryPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class PurchasePublic(Public):
    id: str
    amount: MoneyText
    status: PaymentStatus
    checkout_url: str | None = Field(description="Where the buyer pays; null once settled")
    failure_reason: str | None
    created_at: Timestamp


def purchase_public(purchase: Purchase) -> PurchasePublic:
    return PurchasePublic(
        id=purchase.id,
        amount=format_amount(purchase.amount),
        status=purchase.status,
        checkout_url=purchase.checkout_url,
        failure_reason=purchase.failure_reason,
        created_at=instant(purchase.created_at),
    )


class AutoRechargePublic(Public):
    enabled: bool
    threshold: MoneyText | None
    restore_to: MoneyText | None
    disabled_reason: str | None = Field(description="Why it was last turned off, e.g. a decline")
    payment_method_saved: bool


def auto_recharge_public(view: AutoRechargeView) -> AutoRechargePublic:
    settings = view.settings
    method = view.payment_method
    return AutoRechargePublic(
        enabled=bool(settings and settings.enabled),
        threshold=money(settings.threshold) if settings else None,
        restore_to=money(settings.restore_to) if settings else None,
        disabled_reason=settings.disabled_reason if settings else None,
        payment_method_saved=bool(method and method.payment_method_ref),
    )


class BillingSettingsPublic(Public):
    billing_mode: BillingMode
    tier_level: int | None = Field(description="The operator's tier override; null: none")
    tier: TierLimitsPublic
    lifetime_paid: MoneyText


def billing_settings_public(settings: BillingSettings) -> BillingSettingsPublic:
    team = settings.team
    return BillingSettingsPublic(
        billing_mode=team.billing_mode,
        tier_level=team.tier_level_override,
        tier=tier_limits_public(settings.tier),
        lifetime_paid=format_amount(team.lifetime_paid),
    )


class PromoCodePublic(Public):
    id: str
    code: str
    amount: MoneyText
    scope: ScopePublic | None
    valid_from: Timestamp
    redeem_by: Timestamp | None
    credit_expires_at: Timestamp | None
    credit_valid_days: int | None
    max_redemptions: int
    redemptions: int
    disabled: bool
    disabled_at: Timestamp | None
    created_at: Timestamp


def promo_code_public(code: PromoCode) -> PromoCodePublic:
    return PromoCodePublic(
        id=code.id,
        code=code.display_code,
        amount=format_amount(code.amount),
        scope=_scope(code.scope),
        valid_from=instant(code.valid_from),
        redeem_by=iso(code.redeem_by),
        credit_expires_at=iso(code.credit_expires_at),
        credit_valid_days=code.credit_valid_days,
        max_redemptions=code.max_redemptions,
        redemptions=code.redemptions,
        disabled=code.disabled_at is not None,
        disabled_at=iso(code.disabled_at),
        created_at=instant(code.created_at),
    )


class PromoCodeIssued(Public):
    id: str
    code: str = Field(examples=["7KQM-XH3D-9RTW-C2PF-N8VB"])


class PromoCodesCreated(Public):
    codes: list[PromoCodeIssued]


def promo_codes_created(codes: list[PromoCode]) -> PromoCodesCreated:
    return PromoCodesCreated(codes=[PromoCodeIssued(id=c.id, code=c.display_code) for c in codes])


class PricePublic(Public):
    product: str
    model: str | None
    gpu: str | None
    meter: str
    unit_price: MoneyText = Field(description="Dollars per `per_units` units")
    per_units: int


def price_public(price: Price) -> PricePublic:
    return PricePublic(
        product=price.product,
        model=price.model,
        gpu=price.gpu,
        meter=price.meter,
        unit_price=format_amount(price.unit_price),
        per_units=price.per_units,
    )


class PriceBookPublic(Public):
    effective_from: Timestamp | None = Field(description="null: no price book yet")
    data: list[PricePublic]


def price_book_public(book: PriceBook | None) -> PriceBookPublic:
    if book is None:
        return PriceBookPublic(effective_from=None, data=[])
    return PriceBookPublic(
        effective_from=instant(book.effective_from),
        data=[price_public(p) for p in book.prices],
    )


class TeamPricingPublic(Public):
    team_id: str
    effective_from: Timestamp
    discount_percent: str = Field(pattern=r"^[0-9]{1,3}\.[0-9]{2}$", examples=["12.50"])
    prices: list[PricePublic]


def team_pricing_public(team_id: str, pricing: TeamPricing) -> TeamPricingPublic:
    whole, hundredths = divmod(pricing.discount_bp, 100)
    return TeamPricingPublic(
        team_id=team_id,
        effective_from=instant(pricing.effective_from),
        discount_percent=f"{whole}.{hundredths:02d}",
        prices=[price_public(p) for p in pricing.prices],
    )


class RejectedEvent(Public):
    index: int = Field(description="Position of the event in the batch, from 0")
    id: str | None
    code: str = Field(examples=["unknown_model"])
    message: str


class UsageBatchResult(Public):
    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]


def usage_batch_result(result: IngestResult) -> UsageBatchResult:
    return UsageBatchResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=[
            RejectedEvent(index=r.index, id=r.id, code=r.code, message=r.message)
            for r in result.rejected
        ],
    )


AuthorizeReason = Literal[
    "ok", "insufficient_credits", "rate_limited", "unknown_model", "unknown_product"
]


class HoldPublic(Public):
    id: str
    amount: MoneyText
    expires_at: Timestamp


class AuthorizePublic(Public):
    allowed: bool
    reason: AuthorizeReason
    tier: TierLimitsPublic
    available: MoneyText = Field(
        description="Credit usable for this product, model and GPU, less the open holds"
    )
    hold: HoldPublic | None = Field(
        default=None, exclude_if=_unset, description="With an `estimate`, when allowed"
    )
    retry_after_seconds: int | None = Field(
        default=None, exclude_if=_unset, description="With `rate_limited`: when to try again"
    )


def authorize_public(decision: Decision) -> AuthorizePublic:
    hold = decision.hold
    return AuthorizePublic(
        allowed=decision.allowed,
        reason=decision.reason,
        tier=tier_limits_public(decision.tier),
        available=format_amount(decision.available),
        hold=None
        if hold is None
        else HoldPublic(
            id=hold.id, amount=format_amount(hold.amount), expires_at=instant(hold.expires_at)
        ),
        retry_after_seconds=decision.retry_after_seconds,
    )


class HoldReleasePublic(Public):
    id: str
    released: bool = Field(description="False when the hold had ended already")


class UsageRowPublic(Public):
    start: Timestamp
    product: str
    model: str | None
    cost: MoneyText
    covered_by_credits: MoneyText
    unpaid: MoneyText


class UsageReportPublic(Public):
    data: list[UsageRowPublic]


def usage_report_public(rows: Sequence[UsageRow]) -> UsageReportPublic:
    return UsageReportPublic(
        data=[
            UsageRowPublic(
                start=instant(r.start),
                product=r.product,
                model=r.model,
                cost=format_amount(r.cost),
                covered_by_credits=format_amount(r.covered_by_credits),
                unpaid=format_amount(r.unpaid),
            )
            for r in rows
        ]
    )


class WebhookReceived(Public):
    received: bool
    result: str = Field(description="What the event did, e.g. `granted` or `duplicate`")


class PurchaseCreate(Body):
    amount: Money


class AutoRechargeUpdate(Body):
    enabled: StrictBool
    threshold: OptionalMoney = None
    restore_to: OptionalMoney = None


class BillingSettingsUpdate(Body):
    billing_mode: BillingMode | None = None
    tier_level: int | None = Field(default=None, ge=0, le=5)


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


# --- Who am I, team members, the audit log ---------------------------------------------


class MeUserPublic(Public):
    id: str
    email: str


class MeTeamPublic(Public):
    id: str
    name: str
    role: Role = Field(description="The caller's role in this team")


class MePublic(Public):
    user: MeUserPublic
    teams: list[MeTeamPublic] = Field(description="Every team of the caller, oldest first")


def me_public(me: Me) -> MePublic:
    return MePublic(
        user=MeUserPublic(id=me.user_id, email=me.email),
        teams=[MeTeamPublic(id=team.id, name=team.name, role=role) for team, role in me.teams],
    )


class MemberPublic(Public):
    user_id: str
    email: str
    role: Role
    added_at: Timestamp = Field(description="When the user was added to the team")


class MemberPage(Public):
    data: list[MemberPublic] = Field(description="In the order members were added")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


def member_public(member: Member) -> MemberPublic:
    return MemberPublic(
        user_id=member.user_id,
        email=member.email,
        role=member.role,
        added_at=instant(member.created_at),
    )


class AuditEventPublic(Public):
    id: str = Field(examples=["audit_0193a4c2e8f04b6d2c9a7e1f05"])
    at: Timestamp
    actor: str = Field(
        description="The operator token's id, or `system:<name>` for the command line"
    )
    actor_name: str | None = Field(description="The operator token's name")
    action: str = Field(examples=["balance.read", "grant.create"])
    team_id: str | None = Field(description="null: an action on no one team")
    detail: dict[str, Any] = Field(description="What the action was done with: ids, amounts")
    client: str | None = Field(
        description="The client address over HTTP, `cli` from the command line"
    )


class AuditEventPage(Public):
    data: list[AuditEventPublic] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


def audit_event_public(event: AuditEvent) -> AuditEventPublic:
    return AuditEventPublic(
        id=event.id,
        at=instant(event.at),
        actor=event.actor,
        actor_name=event.actor_name,
        action=event.action,
        team_id=event.team_id,
        detail=dict(event.detail),
        client=event.client,
    )


class SignupPublic(Public):
    user: MeUserPublic
    team: SignupTeamPublic
    token: str = Field(description="A personal API token, shown once: keep it secret")


# --- invoices ----------------------------------------------------------------------------


class InvoiceLinePublic(Public):
    description: str
    product: str | None
    model: str | None
    quantity: int | None = Field(description="The usage's quantity where one meter is billed")
    unit: str | None = Field(description="That meter, e.g. `gpu_seconds`")
    amount: MoneyText = Field(description="Whole cents: the line rounded once, half to even")
    late: bool = Field(description="Usage of an earlier month that arrived after it closed")
    late_period_start: Timestamp | None = Field(description="That month, when `late`")


class CreditsAppliedPublic(Public):
    promotional: MoneyText
    prepaid: MoneyText


class InvoiceAttemptPublic(Public):
    at: Timestamp
    outcome: AttemptOutcome
    reason: str | None


class InvoicePublic(Public):
    id: str
    number: str | None = Field(description="`CL-000001`…, given when the invoice opens")
    period_start: Timestamp
    period_end: Timestamp = Field(description="Exclusive: the first instant of the next month")
    status: InvoiceStatus
    lines: list[InvoiceLinePublic]
    credits_applied: CreditsAppliedPublic
    subtotal: MoneyText
    total: MoneyText = Field(description="Σ lines: what this invoice bills")
    amount_due: MoneyText = Field(description="What is still to pay")
    carried_to_next: MoneyText = Field(
        description="What stays on the unpaid balance for the next invoice (rounding, or a "
        "total under the minimum charge)"
    )
    attempts: list[InvoiceAttemptPublic]
    created_at: Timestamp
    opened_at: Timestamp | None
    paid_at: Timestamp | None
    voided_at: Timestamp | None
    void_note: str | None
    next_charge_at: Timestamp | None = Field(description="When the saved card is charged next")


def invoice_public(invoice: Invoice) -> InvoicePublic:
    return InvoicePublic(
        id=invoice.id,
        number=invoice.number,
        period_start=instant(invoice.period.start),
        period_end=instant(invoice.period.end),
        status=invoice.status,
        lines=[
            InvoiceLinePublic(
                description=line.description,
                product=line.product,
                model=line.model,
                quantity=line.quantity,
                unit=line.unit,
                amount=format_amount(line.amount),
                late=line.late,
                late_period_start=None
                if line.late_period is None
                else instant(line.late_period.start),
            )
            for line in invoice.lines
        ],
        credits_applied=CreditsAppliedPublic(
            promotional=format_amount(invoice.credits_applied.promotional),
            prepaid=format_amount(invoice.credits_applied.prepaid),
        ),
        subtotal=format_amount(invoice.subtotal),
        total=format_amount(invoice.total),
        amount_due=format_amount(invoice.amount_due),
        carried_to_next=format_amount(invoice.carry),
        attempts=[
            InvoiceAttemptPublic(at=instant(a.at), outcome=a.outcome, reason=a.reason)
            for a in invoice.attempts
        ],
        created_at=instant(invoice.created_at),
        opened_at=iso(invoice.opened_at),
        paid_at=iso(invoice.paid_at),
        voided_at=iso(invoice.voided_at),
        void_note=invoice.void_note,
        next_charge_at=iso(invoice.next_charge_at),
    )


class InvoicePage(Public):
    data: list[InvoicePublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class InvoicePay(Body):
    use_saved_payment_method: bool = Field(
        default=False,
        description="Charge the team's saved card now instead of answering a checkout page",
        strict=True,
    )


class InvoiceVoid(Body):
    note: str = Field(description="Why it is written off (shown in the credit history)")


class InvoicePaymentPublic(Public):
    invoice: InvoicePublic
    checkout_url: str | None = Field(description="Where to pay, when paying by checkout")
    outcome: PaymentStatus | None = Field(
        description="The saved card's charge: `succeeded`, `failed` or `pending`"
    )
    reason: str | None = Field(description="Why the charge failed")


def invoice_payment_public(result: PayResult) -> InvoicePaymentPublic:
    return InvoicePaymentPublic(
        invoice=invoice_public(result.invoice),
        checkout_url=result.checkout_url,
        outcome=result.outcome,
        reason=result.reason,
    )


NoticeEventType = Literal[
    "balance.low",
    "credits.expiring",
    "credits.expired",
    "payment.failed",
    "auto_recharge.disabled",
    "invoice.opened",
    "invoice.paid",
    "invoice.payment_failed",
]


class NotificationWebhookUpdate(Body):
    url: str = Field(max_length=2048, description="https; public addresses only")
    events: list[NoticeEventType] | None = Field(
        default=None, min_length=1, description="The event types to send; null: all of them"
    )


class NotificationWebhookPublic(Public):
    url: str
    events: list[str] | None = Field(description="null: every event type")
    secret: str | None = Field(
        default=None,
        exclude_if=_unset,
        description="`whsec_…`, to verify signatures: shown on create and rotate only",
    )
    disabled_at: Timestamp | None = Field(
        description="Set when every try of a notice failed; saving the webhook again enables it"
    )
    disabled_reason: str | None
    created_at: Timestamp


def notification_webhook_public(
    webhook: Webhook, secret: str | None = None
) -> NotificationWebhookPublic:
    return NotificationWebhookPublic(
        url=webhook.url,
        events=None if webhook.events is None else list(webhook.events),
        secret=secret,
        disabled_at=iso(webhook.disabled_at),
        disabled_reason=webhook.disabled_reason,
        created_at=instant(webhook.created_at),
    )


class NotificationPublic(Public):
    id: str = Field(description="The `webhook-id` of every try: receivers dedupe by it")
    type: str
    state: NoticeState
    attempts: int
    last_status: int | None = Field(description="The receiver's HTTP status at the last try")
    last_error: str | None
    next_attempt_at: Timestamp | None = Field(description="When it is tried again, if pending")
    delivered_at: Timestamp | None
    created_at: Timestamp
    payload: dict[str, Any] = Field(description="The body sent: `{type, timestamp, data}`")


class NotificationPagePublic(Public):
    data: list[NotificationPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


def notification_public(notice: Notice) -> NotificationPublic:
    return NotificationPublic(
        id=notice.id,
        type=notice.type,
        state=notice.state,
        attempts=notice.attempts,
        last_status=notice.last_status,
        last_error=notice.last_error,
        next_attempt_at=iso(notice.next_attempt_at)
        if notice.state is NoticeState.PENDING
        else None,
        delivered_at=iso(notice.delivered_at),
        created_at=instant(notice.created_at),
        payload=notice.payload,
    )
