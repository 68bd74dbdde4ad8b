"""The double-entry ledger.

Every balance change is a :class:`Transaction` of postings that sum to zero. An
account's balance is the sum of its postings, positive meaning value held by it:

- ``grant:<id>``: one per grant; its balance is the grant's remaining credit;
- ``team_unpaid:<team id>``: negative while the team owes usage that credits did not
  cover and no invoice has taken yet;
- ``team_invoice:<invoice id>``: negative while an opened invoice is not paid; the
  team's unpaid balance is the negation of these two together;
- ``platform:*``: the platform's side (promotional expense, usage revenue, payments
  clearing, expired credit, voided credit).

The ledger is append-only: corrections are new transactions.
"""

from __future__ import annotations

import enum
from datetime import datetime

from creditledger.domain.errors import UnbalancedTransaction
from creditledger.domain.grants import Grant, GrantKind
from creditledger.domain.money import Nanos
from creditledger.domain.values import Value

PROMOTIONAL_EXPENSE = "platform:promotional_expense"
USAGE_REVENUE = "platform:usage_revenue"
PAYMENTS_CLEARING = "platform:payments_clearing"
EXPIRED_CREDIT = "platform:expired_credit"
VOIDED_CREDIT = "platform:voided_credit"
INVOICES_WRITTEN_OFF = "platform:invoices_written_off"


class EntryType(enum.StrEnum):
    """What a transaction records; the credit history's ``type`` filter."""

    GRANT = "grant"
    USAGE = "usage"
    EXPIRY = "expiry"
    VOID = "void"
    REFUND = "refund"
    INVOICE = "invoice"
    ADJUSTMENT = "adjustment"


def grant_account(grant_id: str) -> str:
    return f"grant:{grant_id}"


def unpaid_account(team_id: str) -> str:
    return f"team_unpaid:{team_id}"


def invoice_account(invoice_id: str) -> str:
    return f"team_invoice:{invoice_id}"


TEAM_OWED_PREFIXES = ("team_unpaid:", "team_invoice:")
"""The accounts a team's unpaid balance is the negation of."""


def is_owed_account(account: str) -> bool:
    return account.startswith(TEAM_OWED_PREFIXES)


class Posting(Value, frozen=True):
    account: str
    amount: Nanos
    grant_id: str | None = None


class Transaction(Value, frozen=True):
    team_id: str
    type: EntryType
    occurred_at: datetime
    postings: tuple[Posting, ...]
    description: str
    reference: str | None = None

    def __post_init__(self) -> None:
        if not self.postings:
            raise UnbalancedTransaction("a transaction has at least one posting")
        for p in self.postings:
            if isinstance(p.amount, bool) or not isinstance(p.amount, int):
                raise UnbalancedTransaction("posting amounts are int nano-dollars")
        if sum(p.amount for p in self.postings) != 0:
            raise UnbalancedTransaction(f"postings of {self.type} do not sum to zero")


def funding_account(kind: GrantKind) -> str:
    """Where a new grant's value comes from."""
    return PROMOTIONAL_EXPENSE if kind is GrantKind.PROMOTIONAL else PAYMENTS_CLEARING


def issue_grant(grant: Grant, description: str, reference: str | None = None) -> Transaction:
    return Transaction(
        team_id=grant.team_id,
        type=EntryType.GRANT,
        occurred_at=grant.created_at,
        postings=(
            Posting(grant_account(grant.id), grant.amount, grant.id),
            Posting(funding_account(grant.kind), -grant.amount),
        ),
        description=description,
        reference=reference,
    )


def write_off(
    grant: Grant, amount: Nanos, entry_type: EntryType, at: datetime, description: str
) -> Transaction:
    """Remove what is left of a grant that expired or was voided."""
    target = EXPIRED_CREDIT if entry_type is EntryType.EXPIRY else VOIDED_CREDIT
    return Transaction(
        team_id=grant.team_id,
        type=entry_type,
        occurred_at=at,
        postings=(
            Posting(grant_account(grant.id), -amount, grant.id),
            Posting(target, amount),
        ),
        description=description,
        reference=grant.id,
    )


def charge_usage(
    team_id: str,
    draws: tuple[tuple[str, Nanos], ...],
    uncovered: Nanos,
    at: datetime,
    description: str,
    reference: str | None,
) -> Transaction:
    """Usage: one posting per grant drawn, the uncovered rest to the unpaid balance."""
    postings = [Posting(grant_account(gid), -n, gid) for gid, n in draws]
    if uncovered:
        postings.append(Posting(unpaid_account(team_id), -uncovered))
    total = sum(n for _, n in draws) + uncovered
    postings.append(Posting(USAGE_REVENUE, total))
    return Transaction(
        team_id=team_id,
        type=EntryType.USAGE,
        occurred_at=at,
        postings=tuple(postings),
        description=description,
        reference=reference,
    )


def refund_payment(
    grant: Grant, amount: Nanos, at: datetime, description: str, reference: str
) -> Transaction:
    """Take refunded money back out of the grant it bought: the credit returns to clearing."""
    return Transaction(
        team_id=grant.team_id,
        type=EntryType.REFUND,
        occurred_at=at,
        postings=(
            Posting(grant_account(grant.id), -amount, grant.id),
            Posting(PAYMENTS_CLEARING, amount),
        ),
        description=description,
        reference=reference,
    )


def reallocate_usage(
    team_id: str,
    old: tuple[tuple[str, Nanos], ...],
    old_uncovered: Nanos,
    new: tuple[tuple[str, Nanos], ...],
    new_uncovered: Nanos,
    at: datetime,
    reference: str,
) -> Transaction | None:
    """Move an already charged event's cost between grants (and the unpaid balance)
    after a late event changed the order. The charge itself is unchanged, so usage
    revenue is untouched and the postings still sum to zero. None when nothing moves."""
    deltas: dict[str, Nanos] = {}
    for grant_id, nanos in old:
        deltas[grant_id] = deltas.get(grant_id, 0) + nanos
    for grant_id, nanos in new:
        deltas[grant_id] = deltas.get(grant_id, 0) - nanos
    postings = [Posting(grant_account(g), d, g) for g, d in sorted(deltas.items()) if d]
    if old_uncovered != new_uncovered:
        postings.append(Posting(unpaid_account(team_id), old_uncovered - new_uncovered))
    if not postings:
        return None
    return Transaction(
        team_id=team_id,
        type=EntryType.ADJUSTMENT,
        occurred_at=at,
        postings=tuple(postings),
        description="Usage re-allocated: an earlier event arrived late",
        reference=reference,
    )


def _invoice_entry(
    team_id: str,
    credited: str,
    debited: str,
    amount: Nanos,
    at: datetime,
    description: str,
    reference: str,
) -> Transaction:
    """An ``invoice`` entry moving ``amount`` into ``credited`` out of ``debited``."""
    return Transaction(
        team_id=team_id,
        type=EntryType.INVOICE,
        occurred_at=at,
        postings=(Posting(credited, amount), Posting(debited, -amount)),
        description=description,
        reference=reference,
    )


def open_invoice(
    team_id: str, invoice_id: str, amount: Nanos, at: datetime, description: str
) -> Transaction:
    """Move what an invoice stands for (its lines before rounding, carried amount
    included) off the unpaid balance onto the invoice."""
    return _invoice_entry(
        team_id,
        unpaid_account(team_id),
        invoice_account(invoice_id),
        amount,
        at,
        description,
        invoice_id,
    )


def carry_over(
    team_id: str, invoice_id: str, amount: Nanos, at: datetime, description: str
) -> Transaction:
    """Put back on the unpaid balance what an invoice does not bill (its rounding
    remainder, or all of it under the minimum charge): the next invoice carries it."""
    return _invoice_entry(
        team_id,
        invoice_account(invoice_id),
        unpaid_account(team_id),
        amount,
        at,
        description,
        invoice_id,
    )


def pay_invoice(
    team_id: str, invoice_id: str, amount: Nanos, at: datetime, description: str, reference: str
) -> Transaction:
    """A payment settles the invoice: the money came in through payments clearing."""
    return _invoice_entry(
        team_id, invoice_account(invoice_id), PAYMENTS_CLEARING, amount, at, description, reference
    )


def write_off_invoice(
    team_id: str, account: str, amount: Nanos, at: datetime, description: str, reference: str
) -> Transaction:
    """An operator voided what ``account`` (an invoice, or the unpaid balance a draft
    stood for) owes: the platform bears it and it is never billed again."""
    return _invoice_entry(
        team_id, account, INVOICES_WRITTEN_OFF, amount, at, description, reference
    )
