"""Promo codes: operators create and disable them, team admins redeem them.

A redemption is one transaction under the team's lock: the guarded UPDATE of the
code's count, the grant with its ledger entry, and the redemption row whose UNIQUE
(code, team) constraint refuses a second one. The database settles every race; the
domain only explains a refusal the database already made. Failed attempts are
counted per team while the team lock is held, so the team's throttle is exact even
for a burst of simultaneous guesses. They are also counted per user and per client
address (docs/decisions/0006), so that a new team buys no fresh guesses; those two
span teams, whose locks do not serialise each other, so a burst across several teams
can overrun them by the attempts in flight at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.accounts import Principal
from creditledger.domain.audit import AuditAction, JsonValue
from creditledger.domain.errors import (
    InvalidRequest,
    NotFound,
    PromoCodeRefused,
    PromoCodeTaken,
)
from creditledger.domain.grants import Grant, GrantKind, GrantSource, Scope
from creditledger.domain.ids import is_id
from creditledger.domain.money import Nanos, format_amount, parse_amount
from creditledger.domain.promo_codes import (
    ATTEMPT_WINDOW_SECONDS,
    CODE_SPACE,
    MAX_BATCH,
    THROTTLE_ACTION,
    PromoCode,
    PromoTerms,
    Refusal,
    chosen_code,
    generated_code,
    normalise_code,
    refusal,
    refusal_error,
    too_many_attempts_message,
)
from creditledger.domain.throttle import Budget, Counted, budget_key
from creditledger.services import audit
from creditledger.services.access import Need, check_team_access, require_operator
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.ports import UnitOfWork
from creditledger.services.throttle import check_budgets, spend

PROMO_NOT_FOUND = "No promo code with this id."
AUDITED_IDS = 100
"""A batch up to this size lists its codes' ids in the audit log; a larger one its count."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewPromoCodes:
    """One code with a chosen ``code`` text, or ``count`` random codes, on the same terms,
    as an operator asks for them (the API or the command line): :func:`issue_promo_codes`
    checks every field. The terms are those of :class:`PromoTerms`."""

    amount: object
    """Credit per redemption, decimal dollars as sent (``"5.00"``): at most
    ``CREDITLEDGER_OPERATOR_GRANT_MAX``, like an operator's grant."""
    max_redemptions: int
    scope: Scope | None = None
    valid_from: datetime | None = None
    redeem_by: datetime | None = None
    credit_expires_at: datetime | None = None
    credit_valid_days: int | None = None
    code: str | None = None
    count: int | None = None

    def terms(self, maximum: Nanos) -> PromoTerms:
        """The terms, with the amount read and held to ``maximum``."""
        return PromoTerms(
            amount=parse_amount(self.amount, maximum=maximum),
            max_redemptions=self.max_redemptions,
            scope=self.scope,
            valid_from=self.valid_from,
            redeem_by=self.redeem_by,
            credit_expires_at=self.credit_expires_at,
            credit_valid_days=self.credit_valid_days,
        )


def issue_promo_codes(
    uow: UnitOfWork, ctx: Context, principal: Principal, new: NewPromoCodes
) -> list[PromoCode]:
    """Create the codes inside the caller's unit of work (operators only)."""
    require_operator(principal)
    terms = new.terms(ctx.settings.operator_grant_max_nanos)
    codes = _new_codes(uow, ctx, principal, new, terms)
    detail: dict[str, JsonValue] = {
        "count": len(codes),
        "amount": format_amount(terms.amount),
        "max_redemptions": terms.max_redemptions,
    }
    if len(codes) <= AUDITED_IDS:
        detail["promo_code_ids"] = [c.id for c in codes]
    audit.record(uow, ctx, principal, AuditAction.PROMO_CODES_CREATE, detail=detail)
    return codes


def _new_codes(
    uow: UnitOfWork, ctx: Context, principal: Principal, new: NewPromoCodes, terms: PromoTerms
) -> list[PromoCode]:
    now = ctx.clock.now()
    terms.check(now)
    if (new.code is None) == (new.count is None):
        raise InvalidRequest("Give either `code` or `count`.", param="count")
    if new.code is not None:
        normal, display = chosen_code(new.code)
        code = terms.new_code(uow.new_id("promo"), normal, display, now)
        if not uow.promo_codes.add(code, principal.token_id):
            raise PromoCodeTaken(
                "A promo code with this text already exists; choose another.", param="code"
            )
        return [code]
    assert new.count is not None
    if not 1 <= new.count <= MAX_BATCH:
        raise InvalidRequest(f"`count` must be between 1 and {MAX_BATCH}.", param="count")
    codes: list[PromoCode] = []
    while len(codes) < new.count:
        display = generated_code(secrets.randbelow(CODE_SPACE))
        code = terms.new_code(uow.new_id("promo"), normalise_code(display), display, now)
        # A clash with an existing code (odds about 2^-98) just draws again.
        if uow.promo_codes.add(code, principal.token_id):
            codes.append(code)
    return codes


def create_promo_codes(ctx: Context, principal: Principal, new: NewPromoCodes) -> list[PromoCode]:
    """Create the codes in a transaction of their own."""
    with ctx.uow() as uow:
        codes = issue_promo_codes(uow, ctx, principal, new)
        uow.commit()
    return codes


def get_promo_code(ctx: Context, principal: Principal, promo_id: str) -> PromoCode:
    require_operator(principal)
    with ctx.uow(write=False) as uow:
        code = uow.promo_codes.get(promo_id) if is_id(promo_id, "promo") else None
    if code is None:
        raise NotFound(PROMO_NOT_FOUND)
    return code


def set_promo_code_disabled(
    ctx: Context, principal: Principal, promo_id: str, disabled: bool
) -> PromoCode:
    """Disable a code (redemptions stop at once) or enable it again."""
    require_operator(principal)
    with ctx.uow() as uow:
        if not is_id(promo_id, "promo") or uow.promo_codes.get(promo_id) is None:
            raise NotFound(PROMO_NOT_FOUND)
        uow.promo_codes.set_disabled(promo_id, ctx.clock.now() if disabled else None)
        action = AuditAction.PROMO_CODE_DISABLE if disabled else AuditAction.PROMO_CODE_ENABLE
        audit.record(uow, ctx, principal, action, detail={"promo_code_id": promo_id})
        code = uow.promo_codes.get(promo_id)
        uow.commit()
    assert code is not None
    return code


def redeem_promo_code(ctx: Context, principal: Principal, team_id: str, raw_code: object) -> Grant:
    """Grant the code's credit to the team (team admins only), or say why not.

    Refusals are counted against the team's, the user's and the client address's
    budgets; over any of them, the attempt is refused before the code is looked up.
    """
    code_text = normalise_code(raw_code)
    budgets = _budgets(ctx, principal, team_id)
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN, lock=True)
        check_budgets(ctx, budgets, _throttled)
        try:
            grant = _redeem(uow, ctx, principal, team_id, code_text)
        except PromoCodeRefused:
            # Counted before the lock is released, so the team's next attempt sees it.
            spend(ctx, budgets)
            raise
        uow.commit()
    return grant


def _budgets(ctx: Context, principal: Principal, team_id: str) -> list[Budget]:
    settings = ctx.settings
    counted = [
        (Counted.TEAM, team_id, settings.promo_failures_per_team),
        (Counted.USER, principal.caller_id, settings.promo_failures_per_user),
    ]
    if principal.client is not None:
        counted.append((Counted.ADDRESS, principal.client, settings.promo_failures_per_address))
    return [
        Budget(kind, budget_key(THROTTLE_ACTION, kind, value), limit, ATTEMPT_WINDOW_SECONDS)
        for kind, value, limit in counted
    ]


def _throttled(budget: Budget, wait: int) -> str:
    return too_many_attempts_message(wait, budget.counted, budget.limit)


def _redeem(
    uow: UnitOfWork, ctx: Context, principal: Principal, team_id: str, code_text: str
) -> Grant:
    now = ctx.clock.now()
    promo = uow.promo_codes.find(code_text)
    if promo is None:
        raise refusal_error(Refusal.INVALID)
    if not uow.promo_codes.claim(promo.id, now):
        # The database refused; the fresh row says why, in the order of refusals.
        fresh = uow.promo_codes.get(promo.id)
        already = uow.promo_codes.redeemed_by_team(promo.id, team_id)
        raise refusal_error(refusal(fresh, now, already_redeemed=already) or Refusal.LIMIT_REACHED)
    grant = issue_grant(
        uow,
        ctx,
        team_id,
        NewGrant(
            kind=GrantKind.PROMOTIONAL,
            source=GrantSource.PROMO_CODE,
            amount=promo.amount,
            scope=promo.scope,
            expires_at=promo.credit_expiry(now),
        ),
        f"Promo code {promo.display_code}",
        promo.id,
    )
    assert principal.user_id is not None  # team admins act with a personal token
    recorded = uow.promo_codes.record_redemption(
        uow.new_id("redeem"), promo.id, team_id, grant.id, principal.user_id, now
    )
    if not recorded:
        raise refusal_error(Refusal.ALREADY_REDEEMED)
    return grant
