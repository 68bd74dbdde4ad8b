"""The operator audit log: every operator action and every operator read of
a team's billing, as facts that are never changed or removed.

An event says who (the operator token's id and name, or ``system:<name>`` for the
command line), what (an :class:`AuditAction`), which team (None for actions on no
team, such as the price book), when, from where (the client address over HTTP,
``cli`` from the command line, None when unknown) and a small JSON ``detail``
(ids, amounts as decimal strings, filters; never a secret such as a promo code's
text or a token).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from creditledger.domain.cursors import CursorCodec

JsonValue = str | int | bool | None | list[str]
"""What a ``detail`` value may be: small and flat."""


class AuditAction(enum.StrEnum):
    # What operators do.
    GRANT_CREATE = "grant.create"
    GRANT_VOID = "grant.void"
    PROMO_CODES_CREATE = "promo_codes.create"
    PROMO_CODE_DISABLE = "promo_code.disable"
    PROMO_CODE_ENABLE = "promo_code.enable"
    BILLING_SETTINGS_SET = "billing_settings.set"
    TEAM_PRICING_SET = "team_pricing.set"
    PRICE_BOOK_SET = "price_book.set"
    TOKEN_CREATE = "token.create"  # noqa: S105 - an action name
    INVOICE_VOID = "invoice.void"
    # What operators read of a team's billing.
    BALANCE_READ = "balance.read"
    CREDITS_READ = "credits.read"
    CREDIT_HISTORY_READ = "credit_history.read"
    CREDIT_HISTORY_EXPORT = "credit_history.export"
    PURCHASE_READ = "purchase.read"
    USAGE_READ = "usage.read"
    AUTO_RECHARGE_READ = "auto_recharge.read"
    INVOICES_READ = "invoices.read"
    NOTIFICATION_WEBHOOK_READ = "notification_webhook.read"
    NOTIFICATIONS_READ = "notifications.read"
    # Reading this log is itself recorded.
    AUDIT_EVENTS_READ = "audit_events.read"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: str
    at: datetime
    actor: str
    """The operator token's id, or ``system:<name>`` for the command line."""
    actor_name: str | None
    """The token's name when the event was written (None when the caller had none)."""
    action: str
    """An :class:`AuditAction` value (kept as text: the log outlives any one version)."""
    team_id: str | None
    client: str | None
    detail: Mapping[str, JsonValue] = field(default_factory=dict)
    seq: int = 0
    """The log's order (newest is highest); 0 until stored. What the cursor remembers."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    team_id: str | None = None
    actor: str | None = None
    since: datetime | None = None


AUDIT_EVENTS = "audit_events"
"""The list name audit-log cursors are sealed for (``domain.cursors``)."""


def _owner(flt: AuditFilter) -> str:
    # A cursor pages through the list of one filter; with any other it is refused.
    since = flt.since.isoformat() if flt.since is not None else ""
    return "\x1f".join((flt.team_id or "", flt.actor or "", since))


def encode_cursor(codec: CursorCodec, flt: AuditFilter, seq: int) -> str:
    """The cursor after the event ``seq`` of the list ``flt`` selects: opaque, and good
    for that list only."""
    return codec.seal_seq(AUDIT_EVENTS, _owner(flt), seq)


def decode_cursor(codec: CursorCodec, flt: AuditFilter, cursor: str) -> int:
    """The ``seq`` a cursor of this list stands for; ``InvalidCursor`` for anything else."""
    return codec.open_seq(AUDIT_EVENTS, _owner(flt), cursor)
