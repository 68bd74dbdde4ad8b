"""The invoice as a PDF: one A4 document per invoice, drawn with fpdf2's core fonts.

What it shows: the seller and the team, the number (or "Draft"), the period and dates, the
status, one table row per line (repeated header on every page), the credits that paid the
period's usage, subtotal, total and amount due, and how payment went.

The same document always gives the same bytes: the PDF's creation date is the invoice's
``created_at`` and its file id is a hash of the content, so nothing depends on the clock.
Text goes through :func:`printable` first, so any unicode in a team name, a description or
a note prints as something (a near letter, or "?") instead of failing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from creditledger.domain.invoices import (
    Attempt,
    Invoice,
    InvoiceDocument,
    InvoiceStatus,
    Line,
    Period,
)
from creditledger.domain.money import Nanos, format_amount

# The core fonts are written with WinAnsiEncoding: cp1252 is exactly what they can show.
_ENCODING = "cp1252"
_FONT = "helvetica"
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Stands for the page count in the footer until the document is closed. Control characters
# never reach the page through printable(), so no text can contain it by chance.
_PAGE_COUNT = "\x1e\x1e\x1e"
_ELLIPSIS = "…"

# Layout, in millimetres on A4 portrait.
_MARGIN = 15.0
_BOTTOM = 18.0
_WIDTH = 210.0 - 2 * _MARGIN
_DESCRIPTION_W = 112.0
_LATE_W = 12.0
_QUANTITY_W = 30.0
_AMOUNT_W = _WIDTH - _DESCRIPTION_W - _LATE_W - _QUANTITY_W
_LINE_H = 4.2
_ROW_PAD = 0.9
_MAX_DESCRIPTION_LINES = 3
_MAX_NOTE_LINES = 4
_LABEL_W = 32.0
_RULE = (190, 190, 190)
_MUTED = (110, 110, 110)
_BLACK = (0, 0, 0)


def render_invoice(document: InvoiceDocument) -> bytes:
    """The PDF of ``document``: byte-identical for the same document."""
    invoice = document.invoice
    pdf = _InvoicePdf(invoice.number or "Draft invoice")
    pdf.set_creation_date(invoice.created_at.astimezone(UTC))
    pdf.set_title(f"Invoice {invoice.number}" if invoice.number else "Draft invoice")
    pdf.set_creator("creditledger")
    pdf.add_page()
    pdf.heading(document)
    pdf.details(invoice)
    pdf.lines(invoice.lines)
    pdf.credits_and_totals(invoice)
    pdf.payment(invoice)
    return bytes(pdf.output())


# --- text -----------------------------------------------------------------------------


def printable(text: str) -> str:
    """``text`` as the core fonts can print it, on one line: whitespace and line breaks become
    spaces, other control and format characters go, a letter the fonts lack becomes its
    nearest one they have ("ő" → "o"), anything else "?"."""
    if text.isprintable():
        try:
            text.encode(_ENCODING)
        except UnicodeEncodeError:
            pass
        else:
            return text
    out: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] == "Z" or ch in "\t\n\r\v\f":
            out.append(" ")
        elif category[0] == "C":
            continue  # control, format (zero-width joiners), unassigned, surrogates
        elif _encodable(ch):
            out.append(ch)
        elif category[0] == "M":
            continue  # a mark the fonts lack (variation selectors, accents alone)
        else:
            near = "".join(
                c
                for c in unicodedata.normalize("NFKD", ch)
                if _encodable(c) and not unicodedata.combining(c) and c.isprintable()
            )
            out.append(near or "?")
    return "".join(out)


def _encodable(ch: str) -> bool:
    try:
        ch.encode(_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def money(nanos: Nanos) -> str:
    """``$12.34``; ``-$1.50`` for a negative amount."""
    if nanos < 0:
        return f"-${format_amount(-nanos)}"
    return f"${format_amount(nanos)}"


def iso_date(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


def period_text(period: Period) -> str:
    """``1 November 2026 – 30 November 2026``: the end is exclusive, so the last day shown is
    the day before it."""
    first = period.start.astimezone(UTC)
    last = period.end.astimezone(UTC) - timedelta(days=1)
    return f"{_day(first)} – {_day(last)}"


def _day(at: datetime) -> str:
    return f"{at.day} {_MONTHS[at.month - 1]} {at.year}"


def _quantity(line: Line) -> str:
    if line.quantity is None:
        return ""
    return f"{line.quantity:,}" + (f" {line.unit}" if line.unit else "")


# --- the document ---------------------------------------------------------------------


class _InvoicePdf(FPDF):
    def __init__(self, label: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.core_fonts_encoding = _ENCODING
        self.alias_nb_pages(_PAGE_COUNT)
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(auto=True, margin=_BOTTOM)
        self.set_draw_color(*_RULE)
        self.set_line_width(0.2)
        self._label = printable(label)

    def footer(self) -> None:
        self.set_y(-12)
        self._font(7.5, color=_MUTED)
        self.cell(0, 4, f"{self._label}  ·  Page {self.page_no()} of {_PAGE_COUNT}", align="C")
        self.set_text_color(*_BLACK)

    # --- blocks ---

    def heading(self, document: InvoiceDocument) -> None:
        invoice = document.invoice
        top = self.get_y()
        seller_w = _WIDTH * 0.6
        for i, raw in enumerate(document.seller):
            if i == 0:
                self._font(11, "B")
            else:
                self._font(9, color=_MUTED)
            for text in self._wrap(printable(raw), seller_w - 2 * self.c_margin, 2):
                self.cell(
                    seller_w,
                    5 if i == 0 else _LINE_H + 0.3,
                    text,
                    new_x=XPos.LMARGIN,
                    new_y=YPos.NEXT,
                )
        seller_bottom = self.get_y()
        self.set_xy(_MARGIN + seller_w, top)
        self._font(18, "B")
        self.cell(_WIDTH - seller_w, 8, "Invoice", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_x(_MARGIN + seller_w)
        self._font(11, "B" if invoice.number else "I")
        self.cell(
            _WIDTH - seller_w,
            6,
            invoice.number or "Draft",
            align="R",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.set_y(max(seller_bottom, self.get_y()) + 6)
        self._font(8, color=_MUTED)
        self.cell(_WIDTH, _LINE_H, "Billed to", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._font(10.5, "B")
        for text in self._wrap(printable(document.team_name), _WIDTH - 2 * self.c_margin, 2):
            self.cell(_WIDTH, 5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(4)

    def details(self, invoice: Invoice) -> None:
        rows = [
            ("Invoice number", invoice.number or "Draft"),
            ("Period", period_text(invoice.period)),
            ("Created", iso_date(invoice.created_at)),
        ]
        if invoice.opened_at is not None:
            rows.append(("Opened", iso_date(invoice.opened_at)))
        if invoice.paid_at is not None:
            rows.append(("Paid", iso_date(invoice.paid_at)))
        if invoice.voided_at is not None:
            rows.append(("Voided", iso_date(invoice.voided_at)))
        rows.append(("Status", invoice.status.value.capitalize()))
        for label, value in rows:
            self._font(9, color=_MUTED)
            self.cell(_LABEL_W, _LINE_H + 0.4, label)
            self._font(9, "B" if label == "Status" else "")
            self.cell(_WIDTH - _LABEL_W, _LINE_H + 0.4, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(5)

    def lines(self, lines: Sequence[Line]) -> None:
        self._table_header()
        self._font(9)
        if not lines:
            self._font(9, "I", color=_MUTED)
            self.cell(
                _WIDTH, _LINE_H + 2 * _ROW_PAD, "No lines.", new_x=XPos.LMARGIN, new_y=YPos.NEXT
            )
            self._font(9)
        for line in lines:
            self._row(line)
        self.ln(3)

    def credits_and_totals(self, invoice: Invoice) -> None:
        credits = invoice.credits_applied
        self._keep(10 * (_LINE_H + 1))
        top = self.get_y()
        left_w = _WIDTH * 0.5
        self._font(9, "B")
        self.cell(left_w, _LINE_H + 0.5, "Credits applied", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._font(8, "I", color=_MUTED)
        self.cell(
            left_w,
            _LINE_H,
            "Taken off the usage before the lines above.",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        for label, amount in (
            ("Promotional credits", credits.promotional),
            ("Prepaid credits", credits.prepaid),
        ):
            self._font(9)
            self.cell(left_w * 0.6, _LINE_H + 0.5, label)
            self.cell(
                left_w * 0.3,
                _LINE_H + 0.5,
                money(amount),
                align="R",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
        left_bottom = self.get_y()
        self.set_y(top)
        label_x = _MARGIN + left_w
        label_w = _WIDTH - left_w - _AMOUNT_W
        for label, amount, bold in (
            ("Subtotal", invoice.subtotal, False),
            ("Total", invoice.total, False),
            ("Amount due", invoice.amount_due, True),
        ):
            self.set_x(label_x)
            self._font(10 if bold else 9, "B" if bold else "")
            h = _LINE_H + (1.8 if bold else 0.8)
            if bold:
                self.line(label_x, self.get_y(), _MARGIN + _WIDTH, self.get_y())
            self.cell(label_w, h, label)
            self.cell(_AMOUNT_W, h, money(amount), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_y(max(left_bottom, self.get_y()) + 6)

    def payment(self, invoice: Invoice) -> None:
        notes = self._payment_notes(invoice)
        self._keep(2 * (_LINE_H + 1))
        self._font(9, "B")
        self.cell(_WIDTH, _LINE_H + 0.5, "Payment", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._font(9)
        for note in notes:
            for text in self._wrap(printable(note), _WIDTH - 2 * self.c_margin, _MAX_NOTE_LINES):
                self.cell(_WIDTH, _LINE_H + 0.3, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if invoice.payable and invoice.checkout_url:
            self._font(9, color=(20, 70, 160))
            url = self._ellipsize(printable(invoice.checkout_url), _WIDTH - 24)
            self.cell(_WIDTH, _LINE_H + 0.3, f"Pay online: {url}", link=invoice.checkout_url)
            self.set_text_color(*_BLACK)

    @staticmethod
    def _payment_notes(invoice: Invoice) -> list[str]:
        notes = [_attempt(a) for a in sorted(invoice.attempts, key=lambda a: a.number)]
        status = invoice.status
        if invoice.paid_at is not None:
            notes.append(f"Paid on {iso_date(invoice.paid_at)}.")
        elif status is InvoiceStatus.PAID:
            notes.append("Paid.")
        if status is InvoiceStatus.VOID:
            notes.append(f"Void: {invoice.void_note}" if invoice.void_note else "Void.")
        elif status is InvoiceStatus.DRAFT:
            notes.append("Draft: not issued yet; the amounts may still change.")
        elif status is InvoiceStatus.UNCOLLECTIBLE:
            notes.append(f"Uncollectible: {money(invoice.amount_due)} is still due.")
        elif status is InvoiceStatus.OPEN:
            if invoice.next_charge_at is not None:
                notes.append(
                    f"The saved card will be charged on {iso_date(invoice.next_charge_at)}."
                )
            elif not invoice.attempts:
                notes.append("No payment attempt yet.")
        return notes

    # --- the table ---

    def _table_header(self) -> None:
        self._font(8, "B", color=_MUTED)
        h = _LINE_H + 2 * _ROW_PAD
        self.cell(_DESCRIPTION_W, h, "Description")
        self.cell(_LATE_W, h, "")
        self.cell(_QUANTITY_W, h, "Quantity", align="R")
        self.cell(_AMOUNT_W, h, "Amount", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(*_MUTED)
        self.line(_MARGIN, self.get_y(), _MARGIN + _WIDTH, self.get_y())
        self.set_draw_color(*_RULE)
        self._font(9)

    def _row(self, line: Line) -> None:
        wrapped = self._wrap(
            printable(line.description),
            _DESCRIPTION_W - 2 * self.c_margin,
            _MAX_DESCRIPTION_LINES,
        )
        height = len(wrapped) * _LINE_H + 2 * _ROW_PAD
        if self.get_y() + height > self.page_break_trigger:
            self.add_page()
            self._table_header()
        top = self.get_y()
        for i, text in enumerate(wrapped):
            self.set_xy(_MARGIN, top + _ROW_PAD + i * _LINE_H)
            self.cell(_DESCRIPTION_W, _LINE_H, text)
        self.set_xy(_MARGIN + _DESCRIPTION_W, top + _ROW_PAD)
        if line.late:
            self._font(8, "I", color=_MUTED)
            self.cell(_LATE_W, _LINE_H, "late")
            self._font(9)
        else:
            self.cell(_LATE_W, _LINE_H, "")
        quantity = printable(_quantity(line))
        self.cell(
            _QUANTITY_W,
            _LINE_H,
            self._ellipsize(quantity, _QUANTITY_W - 2 * self.c_margin),
            align="R",
        )
        self.cell(_AMOUNT_W, _LINE_H, money(line.amount), align="R")
        bottom = top + height
        self.line(_MARGIN, bottom, _MARGIN + _WIDTH, bottom)
        self.set_xy(_MARGIN, bottom)

    # --- helpers ---

    def _font(self, size: float, style: str = "", color: tuple[int, int, int] = _BLACK) -> None:
        self.set_font(_FONT, style, size)
        self.set_text_color(*color)

    def _keep(self, height: float) -> None:
        """Start a new page unless ``height`` still fits on this one."""
        if self.get_y() + height > self.page_break_trigger:
            self.add_page()

    def _wrap(self, text: str, width: float, max_lines: int) -> list[str]:
        """``text`` broken into lines no wider than ``width`` (words first, then letters),
        at most ``max_lines``; what does not fit ends in an ellipsis."""
        if self.get_string_width(text) <= width:
            return [text]
        lines: list[str] = []
        current = ""
        for word in text.split():
            candidate = f"{current} {word}" if current else word
            if self.get_string_width(candidate) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            rest = word
            while self.get_string_width(rest) > width and len(lines) <= max_lines:
                cut = self._fitting(rest, width)
                lines.append(rest[:cut])
                rest = rest[cut:]
            current = rest
            if len(lines) > max_lines:
                break
        if current:
            lines.append(current)
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = self._ellipsize(lines[-1] + _ELLIPSIS, width)
        return lines or [""]

    def _ellipsize(self, text: str, width: float) -> str:
        """``text`` if it fits in ``width``, else as much of it as fits before an ellipsis."""
        if self.get_string_width(text) <= width:
            return text
        body = text.removesuffix(_ELLIPSIS)
        return body[: self._fitting(body, width - self.get_string_width(_ELLIPSIS))] + _ELLIPSIS

    def _fitting(self, text: str, width: float) -> int:
        """How many leading characters of ``text`` fit in ``width`` (at least one)."""
        low, high = 1, len(text)
        while low < high:
            middle = (low + high + 1) // 2
            if self.get_string_width(text[:middle]) <= width:
                low = middle
            else:
                high = middle - 1
        return low


def _attempt(attempt: Attempt) -> str:
    text = f"Attempt {attempt.number} on {iso_date(attempt.at)}: {attempt.outcome.value}"
    return f"{text} ({attempt.reason})" if attempt.reason else text
