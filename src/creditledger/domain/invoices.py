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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from creditledger.domain.errors import InvoiceTransitionRefused
from creditledger.domain.money import NANOS_PER_CENT, Nanos

NUMBER_PREFIX = "CL-"


class InvoiceStatus(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"


# Where each status may go. An uncollectible invoice can still be paid: that is how a team
# that dropped back to prepaid-only gets pay-as-you-go back.
_NEXT: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.OPEN, InvoiceStatus.VOID}),
    InvoiceStatus.OPEN: frozenset(
        {InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.VOID}
    ),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID}),
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


def _next_month(start: datetime) -> datetime:
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def invoice_number(sequence: int) -> str:
    """The invoice number for the ``sequence``-th invoice opened (1-based): CL-000001."""
    if sequence < 1:
        raise ValueError("invoice numbers start at 1")
    return f"{NUMBER_PREFIX}{sequence:06d}"


# --- rounding -------------------------------------------------------------------------


def round_to_cents(amount: Nanos) -> Nanos:
    """``amount`` rounded to whole cents, half to even, still in nanos."""
    cents, rest = divmod(amount, NANOS_PER_CENT)
    twice = 2 * rest
    if twice > NANOS_PER_CENT or (twice == NANOS_PER_CENT and cents % 2 == 1):
        cents += 1
    return cents * NANOS_PER_CENT


# --- the lines ------------------------------------------------------------------------


class LineKind(enum.StrEnum):
    USAGE = "usage"
    CARRIED = "carried"


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
    """What this invoice bills: ``subtotal``, or 0 when under the minimum charge."""


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
                amount=round_to_cents(u.uncovered),
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
                amount=round_to_cents(carried_in),
                exact=carried_in,
            )
        )
    billed = [line for line in lines if line.amount != 0 or line.kind is LineKind.USAGE]
    subtotal = sum(line.amount for line in billed)
    exact = sum(line.exact for line in lines)
    total = subtotal if subtotal >= minimum_charge else 0
    return Bill(
        lines=tuple(billed),
        subtotal=subtotal,
        exact=exact,
        carry=exact - total,
        total=total,
    )
