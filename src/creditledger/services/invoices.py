"""Monthly invoices (docs/decisions/0013): drafts read live from the usage no invoice
has billed, opening once the period's late-arrival window has closed, charging the
saved card with retries, paying by hand, and voiding.

Opening takes the team's lock, then marks the usage it bills
(``usage_events.invoice_id``) and builds its lines from exactly what it marked: an
event that arrives while an invoice closes is either on it or still open, never
both and never neither (I8). The number comes from ``invoice_sequence`` in the same
transaction, so numbers have no gaps and two job runs open each invoice once.

A charge never holds a transaction across the provider call: the pending attempt is
committed first (its primary key lets exactly one of two job runs start it), then
the provider is called with an idempotency key of the invoice and attempt, and the
outcome goes through :func:`services.payments.apply_outcome` like every payment.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from creditledger.domain import ledger
from creditledger.domain.accounts import BillingMode, Principal
from creditledger.domain.audit import AuditAction
from creditledger.domain.errors import (
    CreditLedgerError,
    InvalidCursor,
    InvalidRequest,
    InvoiceTransitionRefused,
    NotFound,
    PaymentMethodRequired,
)
from creditledger.domain.ids import is_id
from creditledger.domain.invoices import (
    Attempt,
    AttemptOutcome,
    Invoice,
    InvoiceDocument,
    InvoiceStatus,
    Period,
    UsageTotal,
    build_bill,
    closes_at,
    has_usage,
    invoice_id,
    invoice_number,
    move,
    next_period,
    period_of,
    previous_period,
)
from creditledger.domain.money import format_amount
from creditledger.domain.payments import (
    CheckoutRequest,
    OffSessionCharge,
    PaymentOutcome,
    PaymentPurpose,
    PaymentStatus,
    SavedPaymentMethod,
)
from creditledger.services import audit, invoice_payments, notices
from creditledger.services.access import Need, check_team_access
from creditledger.services.context import Context
from creditledger.services.idempotency import (
    IdempotentRequest,
    check_key,
    claim_key,
    finish_claimed,
    release_key,
)
from creditledger.services.payments import apply_outcome
from creditledger.services.ports import UnitOfWork

log = logging.getLogger(__name__)

INVOICE_NOT_FOUND = "No invoice with this id in this team."
INVOICES = "invoices"
"""The list name invoice cursors are sealed for."""
SCAN_LIMIT = 500
OPEN_BATCH = 100
"""Teams whose invoices open in one transaction."""
RESUME_AFTER = timedelta(minutes=10)
"""A charge still pending after this long is made again (same idempotency key)."""
MAX_NOTE = 500
NO_CARD = "There is no saved card to charge."


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoicePage:
    invoices: list[Invoice]
    next_cursor: str | None


def list_invoices(
    ctx: Context,
    principal: Principal,
    team_id: str,
    status: InvoiceStatus | None,
    cursor: str | None,
    limit: int,
) -> InvoicePage:
    """The team's invoices, newest period first: its drafts, then those opened."""
    codec = ctx.cursors()
    before: datetime | None = None
    if cursor is not None:
        before = _decode_cursor(codec.open(INVOICES, team_id, cursor))
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.BILLING_READ)
        found = [
            d
            for d in drafts(ctx, uow, team_id)
            if (before is None or d.period.start < before) and status in (None, d.status)
        ]
        found += uow.invoices.page(team_id, status, before, limit + 1)
    found.sort(key=lambda inv: inv.period.start, reverse=True)
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        micros = (page[-1].period.start - _EPOCH) // timedelta(microseconds=1)
        next_cursor = codec.seal(INVOICES, team_id, str(micros).encode())
    audit.record_read(ctx, principal, AuditAction.INVOICES_READ, team_id)
    return InvoicePage(page, next_cursor)


def get_invoice(ctx: Context, principal: Principal, team_id: str, invoice_ref: str) -> Invoice:
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.BILLING_READ)
        invoice = _find(ctx, uow, team_id, invoice_ref)
    audit.record_read(
        ctx, principal, AuditAction.INVOICES_READ, team_id, {"invoice_id": invoice.id}
    )
    return invoice


def invoice_document(
    ctx: Context, principal: Principal, team_id: str, invoice_ref: str
) -> InvoiceDocument:
    """What the invoice's PDF shows."""
    with ctx.uow(write=False) as uow:
        team, _ = check_team_access(uow, principal, team_id, Need.BILLING_READ)
        invoice = _find(ctx, uow, team_id, invoice_ref)
    audit.record_read(
        ctx, principal, AuditAction.INVOICES_READ, team_id, {"invoice_id": invoice.id}
    )
    seller = tuple(line for line in ctx.settings.invoice_seller.splitlines() if line.strip())
    return InvoiceDocument(invoice=invoice, team_name=team.name, seller=seller)


def _find(ctx: Context, uow: UnitOfWork, team_id: str, invoice_ref: str) -> Invoice:
    if not is_id(invoice_ref, "inv"):
        raise NotFound(INVOICE_NOT_FOUND)
    stored = uow.invoices.get(team_id, invoice_ref)
    if stored is not None:
        return stored
    for draft in drafts(ctx, uow, team_id):
        if draft.id == invoice_ref:
            return draft
    raise NotFound(INVOICE_NOT_FOUND)


def drafts(ctx: Context, uow: UnitOfWork, team_id: str) -> list[Invoice]:
    """The team's invoices not opened yet, built from the usage no invoice billed: one
    per month with usage, the earliest also taking what an earlier invoice carried and
    any usage for a month whose invoice has opened (as late lines)."""
    now = ctx.clock.now()
    last = uow.invoices.latest(team_id)
    usage = uow.invoices.open_usage(team_id, period_of(now))
    if not usage:
        return []
    first_open = next_period(last.period) if last is not None else None
    by_period: dict[Period, list[UsageTotal]] = defaultdict(list)
    for total in usage:
        period = total.period
        if first_open is not None and period.start < first_open.start:
            period = first_open
        by_period[period].append(total)
    found = []
    carried = _carried_from(last)
    for n, period in enumerate(sorted(by_period, key=lambda p: p.start)):
        bill = build_bill(
            period,
            by_period[period],
            carried if n == 0 else 0,
            ctx.settings.invoice_minimum_charge_nanos,
        )
        found.append(
            Invoice(
                id=invoice_id(team_id, period),
                team_id=team_id,
                period=period,
                status=InvoiceStatus.DRAFT,
                number=None,
                lines=bill.lines,
                credits_applied=uow.invoices.credits_applied(team_id, period),
                subtotal=bill.subtotal,
                total=bill.total,
                exact=bill.exact,
                carry=bill.carry,
                created_at=period.start,
            )
        )
    return found


def _carried_from(last: Invoice | None) -> int:
    """What the team's latest invoice left on the unpaid balance for the next one: its
    carry if it was opened (a draft voided wrote everything off)."""
    return last.carry if last is not None and last.opened_at is not None else 0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = re.compile(r"\A[0-9]{1,19}\Z")


def _decode_cursor(raw: bytes) -> datetime:
    text = raw.decode("ascii", "replace")
    if not _MICROS.match(text):
        raise InvalidCursor("`cursor` is not one this API gave out.", param="cursor")
    try:
        return _EPOCH + timedelta(microseconds=int(text))
    except OverflowError:
        raise InvalidCursor("`cursor` is not one this API gave out.", param="cursor") from None


# --- opening ---------------------------------------------------------------------------


def closing_period(ctx: Context) -> Period:
    """The latest month whose late-arrival window has closed: the one to open now."""
    window = timedelta(seconds=ctx.settings.late_arrival_window_seconds)
    period = previous_period(period_of(ctx.clock.now()))
    if closes_at(period, window) > ctx.clock.now():
        period = previous_period(period)
    return period


def run_invoices(ctx: Context) -> int:
    """The ``invoices`` job: open every invoice of the month whose window closed, then
    charge what is due. How many invoices it opened."""
    period = closing_period(ctx)
    opened = 0
    after: str | None = None
    while True:
        with ctx.uow(write=False) as uow:
            teams = uow.invoices.teams_to_open(period, after, SCAN_LIMIT)
        for start in range(0, len(teams), OPEN_BATCH):
            batch = teams[start : start + OPEN_BATCH]
            try:
                opened += len(open_invoices(ctx, batch, period))
            except CreditLedgerError as exc:
                log.warning("invoices of %d teams not opened yet: %s", len(batch), exc.message)
        if len(teams) < SCAN_LIMIT:
            break
        after = teams[-1]
    charge_due(ctx)
    return opened


def open_invoice(ctx: Context, team_id: str, period: Period) -> Invoice | None:
    """Open the team's invoice for ``period``; None when there is nothing to bill or
    it is open already."""
    opened = open_invoices(ctx, [team_id], period)
    return opened[0] if opened else None


def open_invoices(ctx: Context, team_ids: Sequence[str], period: Period) -> list[Invoice]:
    """Open these teams' invoices for ``period`` in one transaction, under their locks:
    those with nothing to bill or an invoice for it already are left alone."""
    with ctx.uow() as uow:
        teams = uow.teams.lock_many(team_ids)
        now = ctx.clock.now()
        latest = uow.invoices.latest_of(sorted(teams))
        due = {
            team_id: invoice_id(team_id, period)
            for team_id in sorted(teams)
            if team_id not in latest or latest[team_id].period.start < period.start
        }
        # Mark first, then build the lines from what was marked: the lines are exactly
        # the usage each invoice bills, whatever arrives meanwhile.
        if uow.invoices.bill_usage_of(due, period.end) == 0:
            return []
        billed = uow.invoices.billed_usage_of(list(due.values()), period)
        bills = {}
        for team_id, inv_id in due.items():
            bill = build_bill(
                period,
                billed.get(inv_id, []),
                _carried_from(latest.get(team_id)),
                ctx.settings.invoice_minimum_charge_nanos,
            )
            if has_usage(bill):
                bills[team_id] = bill
        if not bills:
            return []
        first = uow.invoices.next_sequences(len(bills))
        credits = uow.invoices.credits_applied_of(sorted(bills), period)
        opened = []
        for n, (team_id, bill) in enumerate(sorted(bills.items())):
            status = move(InvoiceStatus.DRAFT, InvoiceStatus.OPEN)
            paid_at = None
            if bill.total == 0:
                status, paid_at = move(status, InvoiceStatus.PAID), now  # nothing to pay
            charge_at = None
            mode = teams[team_id].billing_mode
            if status is InvoiceStatus.OPEN and mode is BillingMode.PAY_AS_YOU_GO:
                charge_at = now
            opened.append(
                Invoice(
                    id=due[team_id],
                    team_id=team_id,
                    period=period,
                    status=status,
                    number=invoice_number(first + n),
                    lines=bill.lines,
                    credits_applied=credits[team_id],
                    subtotal=bill.subtotal,
                    total=bill.total,
                    exact=bill.exact,
                    carry=bill.carry,
                    created_at=now,
                    opened_at=now,
                    paid_at=paid_at,
                    next_charge_at=charge_at,
                )
            )
        rows = [(inv, first + n) for n, inv in enumerate(opened)]
        if uow.invoices.add_many(rows, now) != len(rows):
            # Another opening got there (it can not under the locks): give the numbers back.
            raise InvoiceTransitionRefused("These invoices were opened meanwhile.")
        txs = [tx for inv in opened for tx in _opening_transactions(uow, inv, now)]
        uow.ledger.post_many(txs, now)
        hooked = uow.notices.teams_with_webhooks(sorted(bills))
        for inv in opened:
            if inv.team_id in hooked and inv.status is InvoiceStatus.OPEN:
                notices.invoice_notice(uow, ctx, "invoice.opened", inv, now)
        uow.commit()
    return opened


def _opening_transactions(
    uow: UnitOfWork, invoice: Invoice, now: datetime
) -> list[tuple[str, ledger.Transaction]]:
    month = f"{invoice.period.start:%B %Y}"
    txs = []
    if invoice.exact:
        txs.append(
            ledger.open_invoice(
                invoice.team_id,
                invoice.id,
                invoice.exact,
                now,
                f"Invoice {invoice.number} for {month} opened: "
                f"{format_amount(invoice.total)} dollars to pay",
            )
        )
    if invoice.carry:
        txs.append(
            ledger.carry_over(
                invoice.team_id,
                invoice.id,
                invoice.carry,
                now,
                f"Invoice {invoice.number}: {format_amount(invoice.carry)} dollars "
                "carried to the next invoice",
            )
        )
    return [(uow.new_id("txn"), tx) for tx in txs]


# --- charging --------------------------------------------------------------------------


def run_invoice_retries(ctx: Context) -> int:
    """The ``invoice_retries`` job: charge the invoices whose (next) charge is due. How
    many charges it made."""
    return charge_due(ctx)


def charge_due(ctx: Context) -> int:
    now = ctx.clock.now()
    with ctx.uow(write=False) as uow:
        stale = uow.invoices.pending_attempts_before(now - RESUME_AFTER, SCAN_LIMIT)
        due = uow.invoices.due_for_charge(now, SCAN_LIMIT)
    charged = 0
    for team_id, inv_id, number in stale:
        _charge_again(ctx, team_id, inv_id, number)
    for team_id, inv_id in due:
        try:
            charged += _attempt(ctx, team_id, inv_id, by_hand=False) is not None
        except CreditLedgerError as exc:
            log.warning("invoice %s not charged yet: %s", inv_id, exc.message)
    return charged


def _attempt(ctx: Context, team_id: str, inv_id: str, *, by_hand: bool) -> PaymentOutcome | None:
    """Start one charge of the saved card and apply its outcome. None when it is not
    due (or another run started it)."""
    with ctx.uow() as uow:
        uow.teams.lock(team_id)
        now = ctx.clock.now()
        invoice = uow.invoices.get(team_id, inv_id)
        if invoice is None:
            return None
        if by_hand:
            if not invoice.payable:
                raise InvoiceTransitionRefused(_not_payable(invoice))
        elif (
            invoice.status is not InvoiceStatus.OPEN
            or invoice.next_charge_at is None
            or invoice.next_charge_at > now
        ):
            return None
        if any(a.outcome is AttemptOutcome.PENDING for a in invoice.attempts):
            return None  # one is in flight
        method = uow.payments.saved_method(team_id)
        number = len(invoice.attempts) + 1
        card = method is not None and method.payment_method_ref is not None
        if by_hand and not card:
            raise PaymentMethodRequired(
                "There is no saved card: pay with a checkout instead (leave out "
                "`use_saved_payment_method`)."
            )
        outcome = AttemptOutcome.PENDING if card else AttemptOutcome.FAILED
        attempt = Attempt(number=number, at=now, outcome=outcome, reason=None if card else NO_CARD)
        if not uow.invoices.start_attempt(inv_id, attempt):
            return None
        if not card:
            invoice_payments.after_failed_attempt(uow, ctx, invoice, number, now)
            uow.commit()
            return PaymentOutcome(PaymentStatus.FAILED, None, failure_reason=NO_CARD)
        uow.invoices.update(replace(invoice, next_charge_at=None), now)
        uow.commit()
    assert method is not None
    return _charge(ctx, invoice, number, method)


def _charge_again(ctx: Context, team_id: str, inv_id: str, number: int) -> None:
    with ctx.uow(write=False) as uow:
        invoice = uow.invoices.get(team_id, inv_id)
        method = uow.payments.saved_method(team_id)
    if invoice is None or method is None or method.payment_method_ref is None:
        return
    _charge(ctx, invoice, number, method)


def _charge(
    ctx: Context, invoice: Invoice, number: int, method: SavedPaymentMethod
) -> PaymentOutcome | None:
    assert method.payment_method_ref is not None
    try:
        outcome = ctx.payments.charge_off_session(
            OffSessionCharge(
                reference=invoice.id,
                team_id=invoice.team_id,
                amount=invoice.total,
                customer_ref=method.customer_ref,
                payment_method_ref=method.payment_method_ref,
                idempotency_key=f"invoice:{invoice.id}:attempt:{number}",
                purpose=PaymentPurpose.INVOICE,
            )
        )
    except CreditLedgerError as exc:
        log.warning("invoice %s not charged yet: %s", invoice.id, exc.message)
        return None  # still pending: charged again later with the same key
    if outcome.reference is None:
        outcome = replace(outcome, purpose=PaymentPurpose.INVOICE, reference=invoice.id)
    apply_outcome(ctx, outcome)
    return outcome


def _not_payable(invoice: Invoice) -> str:
    if invoice.status is InvoiceStatus.DRAFT:
        return "This invoice is a draft: it can be paid once it opens after the month ends."
    if invoice.amount_due == 0:
        return f"This invoice is {invoice.status.value}: there is nothing to pay."
    return f"This invoice is {invoice.status.value} and can not be paid."


# --- paying by hand --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayResult:
    invoice: Invoice
    checkout_url: str | None = None
    outcome: PaymentStatus | None = None
    """The saved card's charge: succeeded, failed or pending; None for a checkout."""
    reason: str | None = None


def pay_invoice(
    ctx: Context,
    principal: Principal,
    team_id: str,
    inv_ref: str,
    use_saved_payment_method: bool,
    request: IdempotentRequest,
    render: Callable[[PayResult], tuple[int, str]],
) -> tuple[int, str]:
    """Pay an open (or uncollectible) invoice: a checkout page to pay on, or a charge of
    the saved card now. The same Idempotency-Key replays the first answer."""
    key = check_key(request.key)
    caller = request.caller
    fingerprint = request.fingerprint(b"saved" if use_saved_payment_method else b"checkout")
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN)
        invoice = _find(ctx, uow, team_id, inv_ref)
        method = uow.payments.saved_method(team_id)
    replay = claim_key(ctx, caller, key, fingerprint)
    if replay is not None:
        return replay
    try:
        if not invoice.payable:
            raise InvoiceTransitionRefused(_not_payable(invoice))
        if use_saved_payment_method:
            result = _pay_with_saved_card(ctx, team_id, invoice)
        else:
            result = _pay_with_checkout(ctx, invoice, method)
    except CreditLedgerError:
        release_key(ctx, caller, key)
        raise
    return finish_claimed(ctx, caller, key, lambda uow: result, render)


def _pay_with_saved_card(ctx: Context, team_id: str, invoice: Invoice) -> PayResult:
    outcome = _attempt(ctx, team_id, invoice.id, by_hand=True)
    with ctx.uow(write=False) as uow:
        current = uow.invoices.get(team_id, invoice.id) or invoice
    if outcome is None:
        return PayResult(current, outcome=PaymentStatus.PENDING)
    return PayResult(current, outcome=outcome.status, reason=outcome.failure_reason)


def _pay_with_checkout(
    ctx: Context, invoice: Invoice, method: SavedPaymentMethod | None
) -> PayResult:
    if (
        invoice.checkout_session_id is not None
        and invoice.checkout_url is not None
        and ctx.payments.checkout_outcome(invoice.checkout_session_id) is None
    ):
        return PayResult(invoice, checkout_url=invoice.checkout_url)  # still open
    session = ctx.payments.create_checkout(
        CheckoutRequest(
            reference=invoice.id,
            team_id=invoice.team_id,
            amount=invoice.total,
            customer_ref=method.customer_ref if method is not None else None,
            idempotency_key=f"invoice:{invoice.id}:checkout:{invoice.checkout_session_id or 1}",
            purpose=PaymentPurpose.INVOICE,
            description=f"Invoice {invoice.number}",
        )
    )
    with ctx.uow() as uow:
        uow.teams.lock(invoice.team_id)
        current = uow.invoices.get(invoice.team_id, invoice.id) or invoice
        updated = replace(current, checkout_session_id=session.session_id, checkout_url=session.url)
        uow.invoices.update(updated, ctx.clock.now())
        uow.commit()
    return PayResult(updated, checkout_url=session.url)


# --- voiding ---------------------------------------------------------------------------


def void_invoice(
    ctx: Context, principal: Principal, team_id: str, inv_ref: str, note: object
) -> Invoice:
    """Operators: write an invoice off. It is never billed again; the credit history
    shows the write-off with the note."""
    text = _note(note)
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.OPERATOR, lock=True)
        now = ctx.clock.now()
        invoice = _find(ctx, uow, team_id, inv_ref)
        if invoice.status is InvoiceStatus.DRAFT:
            voided = _void_draft(ctx, uow, invoice, text, now)
        else:
            voided = _void_stored(uow, invoice, text, now)
        audit.record(
            uow,
            ctx,
            principal,
            AuditAction.INVOICE_VOID,
            team_id,
            {"invoice_id": invoice.id, "note": text, "amount": format_amount(invoice.amount_due)},
        )
        uow.commit()
    return voided


def _note(note: object) -> str:
    if not isinstance(note, str) or not 1 <= len(note.strip()) <= MAX_NOTE:
        raise InvalidRequest(f"`note` must say why, in 1 to {MAX_NOTE} characters.", param="note")
    return note.strip()


def _void_draft(ctx: Context, uow: UnitOfWork, draft: Invoice, note: str, now: datetime) -> Invoice:
    """A draft voided: the usage it stood for (and what it carried) is written off."""
    current = drafts(ctx, uow, draft.team_id)
    if not current or current[0].id != draft.id:
        raise InvoiceTransitionRefused(
            "Only the earliest draft can be voided: void or open the earlier one first."
        )
    uow.invoices.bill_usage(draft.team_id, draft.id, draft.period.end)
    bill = build_bill(
        draft.period,
        uow.invoices.billed_usage(draft.id, draft.period),
        _carried_from(uow.invoices.latest(draft.team_id)),
        ctx.settings.invoice_minimum_charge_nanos,
    )
    voided = replace(
        draft,
        status=move(draft.status, InvoiceStatus.VOID),
        lines=bill.lines,
        subtotal=bill.subtotal,
        total=bill.total,
        exact=bill.exact,
        carry=bill.carry,
        created_at=now,
        voided_at=now,
        void_note=note,
    )
    if not uow.invoices.add(voided, None, now):
        raise InvoiceTransitionRefused("This invoice changed meanwhile; read it again.")
    if bill.exact:
        uow.ledger.post(
            ledger.write_off_invoice(
                draft.team_id,
                ledger.unpaid_account(draft.team_id),
                bill.exact,
                now,
                f"Draft invoice for {draft.period.start:%B %Y} voided: {note}",
                draft.id,
            ),
            uow.new_id("txn"),
            now,
        )
    return voided


def _void_stored(uow: UnitOfWork, invoice: Invoice, note: str, now: datetime) -> Invoice:
    was_uncollectible = invoice.status is InvoiceStatus.UNCOLLECTIBLE
    voided = replace(
        invoice,
        status=move(invoice.status, InvoiceStatus.VOID),
        voided_at=now,
        void_note=note,
        next_charge_at=None,
    )
    uow.invoices.update(voided, now)
    if invoice.amount_due:
        uow.ledger.post(
            ledger.write_off_invoice(
                invoice.team_id,
                ledger.invoice_account(invoice.id),
                invoice.amount_due,
                now,
                f"Invoice {invoice.number} voided: {note}",
                invoice.id,
            ),
            uow.new_id("txn"),
            now,
        )
    if was_uncollectible:
        invoice_payments.restore_pay_as_you_go(uow, invoice.team_id)
    return voided
