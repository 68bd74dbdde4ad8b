"""Issuing and voiding grants; the only writers of grant-issuing ledger entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from creditledger.domain import ledger
from creditledger.domain.accounts import Principal
from creditledger.domain.audit import AuditAction
from creditledger.domain.errors import GrantAlreadyVoided, InvalidRequest, NotFound
from creditledger.domain.grants import (
    Grant,
    GrantKind,
    GrantSource,
    Scope,
    default_effective_at,
)
from creditledger.domain.ids import is_id
from creditledger.domain.money import Nanos, format_amount, parse_amount
from creditledger.services import audit
from creditledger.services.access import Need, check_team_access
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork

MAX_NOTE_LENGTH = 500


@dataclass(frozen=True, slots=True)
class NewGrant:
    kind: GrantKind
    source: GrantSource
    amount: Nanos
    scope: Scope | None = None
    effective_at: datetime | None = None
    """None: from the start of the second it is granted in (``default_effective_at``)."""
    expires_at: datetime | None = None
    note: str | None = None


def issue_grant(
    uow: UnitOfWork,
    ctx: Context,
    team_id: str,
    new: NewGrant,
    description: str,
    reference: str | None = None,
) -> Grant:
    """Create the grant and the ledger entry that funds it. The caller holds the team lock."""
    now = ctx.clock.now()
    effective_at = new.effective_at or default_effective_at(now)
    if new.expires_at is not None and new.expires_at <= effective_at:
        raise InvalidRequest("`expires_at` must be after `effective_at`.", param="expires_at")
    grant = Grant(
        id=uow.new_id("grant"),
        team_id=team_id,
        kind=new.kind,
        source=new.source,
        amount=new.amount,
        remaining=new.amount,
        scope=new.scope,
        effective_at=effective_at,
        expires_at=new.expires_at,
        voided_at=None,
        created_at=now,
    )
    uow.grants.add(grant, new.note)
    uow.ledger.post(ledger.issue_grant(grant, description, reference), uow.new_id("txn"), now)
    return grant


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorGrant:
    """Promotional credit an operator grants by hand (the API or the command line), as
    asked for: :func:`grant_operator_credit` checks every field."""

    amount: object
    """Decimal dollars as sent, e.g. ``"25.00"``: at most ``CREDITLEDGER_OPERATOR_GRANT_MAX``."""
    note: str | None
    """Why the credit is granted; required."""
    scope: Scope | None = None
    effective_at: datetime | None = None
    expires_at: datetime | None = None


def grant_operator_credit(
    uow: UnitOfWork, ctx: Context, principal: Principal, team_id: str, asked: OperatorGrant
) -> Grant:
    """POST /teams/{id}/grants: a promotional grant by an operator, inside the caller's
    (idempotent) unit of work."""
    check_team_access(uow, principal, team_id, Need.OPERATOR, lock=True)
    amount = parse_amount(asked.amount, maximum=ctx.settings.operator_grant_max_nanos)
    note = (asked.note or "").strip()
    if not 1 <= len(note) <= MAX_NOTE_LENGTH or not note.isprintable():
        raise InvalidRequest(
            "`note` must say why the credit is granted "
            f"(1 to {MAX_NOTE_LENGTH} printable characters on one line).",
            param="note",
        )
    if asked.expires_at is not None and asked.expires_at <= ctx.clock.now():
        raise InvalidRequest("`expires_at` must be in the future.", param="expires_at")
    new = NewGrant(
        kind=GrantKind.PROMOTIONAL,
        source=GrantSource.MANUAL,
        amount=amount,
        scope=asked.scope,
        effective_at=asked.effective_at,
        expires_at=asked.expires_at,
        note=asked.note,
    )
    grant = issue_grant(uow, ctx, team_id, new, f"Operator grant: {note}", principal.token_id)
    audit.record(
        uow,
        ctx,
        principal,
        AuditAction.GRANT_CREATE,
        team_id,
        {"grant_id": grant.id, "amount": format_amount(grant.amount), "note": note},
    )
    return grant


def create_operator_grant(
    ctx: Context, principal: Principal, team_id: str, asked: OperatorGrant
) -> Grant:
    """An operator's grant in a transaction of its own (the command line)."""
    with ctx.uow() as uow:
        grant = grant_operator_credit(uow, ctx, principal, team_id, asked)
        uow.commit()
    return grant


def void_grant(ctx: Context, principal: Principal, team_id: str, grant_id: str) -> Grant:
    """Void a grant and write off what remains of it."""
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.OPERATOR, lock=True)
        grant = uow.grants.get(team_id, grant_id) if is_id(grant_id, "grant") else None
        if grant is None:
            raise NotFound("No grant with this id in this team.")
        if grant.voided_at is not None:
            raise GrantAlreadyVoided("This grant is already voided.")
        now = ctx.clock.now()
        uow.grants.set_voided(grant.id, now)
        if grant.remaining:
            tx = ledger.write_off(
                grant, grant.remaining, ledger.EntryType.VOID, now, "Grant voided by an operator"
            )
            uow.ledger.post(tx, uow.new_id("txn"), now)
        audit.record(
            uow,
            ctx,
            principal,
            AuditAction.GRANT_VOID,
            team_id,
            {"grant_id": grant.id, "written_off": format_amount(grant.remaining)},
        )
        voided = uow.grants.get(team_id, grant_id)
        uow.commit()
    assert voided is not None
    return voided
