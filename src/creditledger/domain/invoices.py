"""Monthly invoices: the billing period, the lines, rounding once per line, and the
status an invoice may move to.

An invoice bills what credits did not cover in one calendar month (UTC). Usage keeps
nano-dollar precision; each line is rounded to whole cents once, half to even, and what
rounding leaves over (a fraction of a cent either way) stays on the team's unpaid
balance and is carried into the next invoice as its own line, so over any run of months
the cents billed plus what is still carried equal the nanos charged exactly.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from creditledger.domain.errors import InvoiceTransitionRefused
from creditledger.domain.money import Nanos, round_half_even_to_cents

NUMBER_PREFIX = "CL-"


class InvoiceStatus(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"


# Where each status may go. An uncollectible invoice can still be paid (that is how a team
# that dropped back to prepaid-only gets pay-as-you-go back) or written off by an operator.
_NEXT: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.OPEN, InvoiceStatus.VOID}),
    InvoiceStatus.OPEN: frozenset(
        {InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.VOID}
    ),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
    InvoiceStatus.PAID: frozenset(),
    InvoiceStatus.VOID: frozenset(),
}


def move(current: InvoiceStatus, wanted: InvoiceStatus) -> InvoiceStatus:
    """``wanted`` if an invoice that is ``current`` may become it; refused otherwise."""
    if wanted not in _NEXT[current]:
        raise InvoiceTransitionRefused(
            f"an invoice that is {current.value} can not become {wanted.value}"
        )
    return wanted


def may_move(current: InvoiceStatus, wanted: InvoiceStatus) -> bool:
    return wanted in _NEXT[current]


# --- the period -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """One calendar month in UTC: ``start`` inclusive, ``end`` exclusive."""

    start: datetime
    end: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def period_of(at: datetime) -> Period:
    """The calendar month (UTC) that ``at`` falls in."""
    at = at.astimezone(UTC)
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    return Period(start, _next_month(start))


def next_period(period: Period) -> Period:
    return Period(period.end, _next_month(period.end))


def previous_period(period: Period) -> Period:
    return period_of(period.start - timedelta(microseconds=1))


def _next_month(start: datetime) -> datetime:
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def invoice_number(sequence: int) -> str:
    """The invoice number for the ``sequence``-th invoice opened (1-based): CL-000001."""
    if sequence < 1:
        raise ValueError("invoice numbers start at 1")
    return f"{NUMBER_PREFIX}{sequence:06d}"


# --- the lines ------------------------------------------------------------------------


class LineKind(enum.StrEnum):
    USAGE = "usage"
    CARRIED = "carried"
    """What an earlier invoice left: its rounding remainder, or all of it when it was
    under the minimum charge."""
    CARRIED_OUT = "carried_out"
    """A total under the minimum charge taken off again: it rolls into the next invoice."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageTotal:
    """What credits did not cover of one (product, model) in one period, in nanos."""

    product: str
    model: str
    uncovered: Nanos
    quantity: int | None = None
    """The usage's quantity where one meter is involved, else None."""
    unit: str | None = None
    period: Period
    """The period the usage belongs to: earlier than the invoice's for a late line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    kind: LineKind
    description: str
    amount: Nanos
    """Whole cents (in nanos): what the line bills."""
    exact: Nanos
    """What it stands for before rounding."""
    product: str | None = None
    model: str | None = None
    quantity: int | None = None
    unit: str | None = None
    late: bool = False
    late_period: Period | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Bill:
    """The lines of one invoice and what it leaves to carry into the next."""

    lines: tuple[Line, ...]
    subtotal: Nanos
    """Σ line amounts: whole cents."""
    exact: Nanos
    """Σ of what the lines stand for: the unpaid nanos this invoice settles or carries."""
    carry: Nanos
    """What stays on the unpaid balance for the next invoice: the rounding remainder
    (``exact − subtotal``, positive or negative) plus, when ``subtotal`` is under the
    minimum charge, the subtotal itself."""
    total: Nanos
    """What this invoice bills, Σ of its lines: ``subtotal``, or 0 when under the
    minimum charge (a last line takes the subtotal off again)."""


def build_bill(
    period: Period,
    usage: Iterable[UsageTotal],
    carried_in: Nanos,
    minimum_charge: Nanos,
) -> Bill:
    """The lines of ``period``'s invoice.

    ``usage`` is what credits did not cover, per (product, model, period of the usage);
    a total for an earlier period becomes a late line naming it. ``carried_in`` is what
    the last invoice left (its remainder, or all of it when under the minimum): a line of
    its own, rounded like any other. A zero line is left out; a bill with no line bills
    nothing.
    """
    lines: list[Line] = []
    for u in sorted(usage, key=lambda u: (u.period.start, u.product, u.model)):
        if u.uncovered == 0:
            continue
        late = u.period.start < period.start
        description = f"{u.product} {u.model}"
        if late:
            description += f" (late usage for {u.period.start:%B %Y})"
        lines.append(
            Line(
                kind=LineKind.USAGE,
                description=description,
                amount=round_half_even_to_cents(u.uncovered),
                exact=u.uncovered,
                product=u.product,
                model=u.model,
                quantity=u.quantity,
                unit=u.unit,
                late=late,
                late_period=u.period if late else None,
            )
        )
    if carried_in:
        lines.append(
            Line(
                kind=LineKind.CARRIED,
                description="Carried from an earlier invoice",
                amount=round_half_even_to_cents(carried_in),
                exact=carried_in,
            )
        )
    billed = [line for line in lines if line.amount != 0 or line.kind is LineKind.USAGE]
    subtotal = sum(line.amount for line in billed)
    exact = sum(line.exact for line in lines)
    total = subtotal
    if billed and subtotal < minimum_charge:
        billed.append(
            Line(
                kind=LineKind.CARRIED_OUT,
                description="Under the minimum charge: carried to the next invoice",
                amount=-subtotal,
                exact=0,
            )
        )
        total = 0
    return Bill(
        lines=tuple(billed),
        subtotal=subtotal,
        exact=exact,
        carry=exact - total,
        total=total,
    )


def has_usage(bill: Bill) -> bool:
    """Whether there is anything to bill: a team whose period has no usage line (only a
    carried remainder, or nothing) gets no invoice, and what it carries waits."""
    return any(line.kind is LineKind.USAGE for line in bill.lines)


# --- the invoice ----------------------------------------------------------------------


def invoice_id(team_id: str, period: Period) -> str:
    """The id of a team's invoice for ``period``: the same while it is a draft (and
    not stored) and once it is opened, so a link to the draft keeps working."""
    digest = hashlib.sha256(f"{team_id}:{period.start:%Y-%m}".encode()).hexdigest()
    return f"inv_{digest[:32]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditsApplied:
    """What credits paid of the period's usage, by kind."""

    promotional: Nanos = 0
    prepaid: Nanos = 0


class AttemptOutcome(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One try at charging the saved card for an invoice."""

    number: int
    at: datetime
    outcome: AttemptOutcome
    reason: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"attempt:{self.number}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoice:
    id: str
    team_id: str
    period: Period
    status: InvoiceStatus
    number: str | None
    """Given when the invoice opens; a draft (or a draft voided) has none."""
    lines: tuple[Line, ...]
    credits_applied: CreditsApplied
    subtotal: Nanos
    total: Nanos
    exact: Nanos
    carry: Nanos
    """What it left on the unpaid balance for the next invoice (``exact − total``)."""
    attempts: tuple[Attempt, ...] = ()
    created_at: datetime
    opened_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    void_note: str | None = None
    next_charge_at: datetime | None = None
    """When the saved card is to be charged (again); None when it is not."""
    checkout_session_id: str | None = None
    checkout_url: str | None = None

    @property
    def amount_due(self) -> Nanos:
        """What is still to be paid: the total while it is draft, open or uncollectible."""
        if self.status in (InvoiceStatus.PAID, InvoiceStatus.VOID):
            return 0
        return self.total

    @property
    def payable(self) -> bool:
        return self.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE) and self.total > 0


def closes_at(period: Period, late_arrival_window: timedelta) -> datetime:
    """When a period's invoice opens: once usage for it can no longer arrive in time."""
    return period.end + late_arrival_window


def next_charge_after(
    first_failure: datetime, failures: int, retry_days: tuple[int, ...]
) -> datetime | None:
    """When to charge again after ``failures`` failed attempts, the first at
    ``first_failure``: the retry schedule counts days from that first failure
    (default 1, 3 and 7). None once every retry has failed: the invoice is then
    uncollectible."""
    if failures < 1 or failures > len(retry_days):
        return None
    return first_failure + timedelta(days=retry_days[failures - 1])


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceDocument:
    """What an invoice PDF shows: the invoice, who it is for and who issues it."""

    invoice: Invoice
    team_name: str
    seller: tuple[str, ...]
    """The issuer's name and address, one line each."""
