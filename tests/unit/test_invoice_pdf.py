"""The invoice PDF, read back with pypdf: what it shows, page breaks with the header on every
page, text that survives any unicode, and the same bytes for the same document."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

from pypdf import PdfReader

from creditledger.adapters.pdf.invoice import printable, render_invoice
from creditledger.domain.invoices import (
    Attempt,
    AttemptOutcome,
    CreditsApplied,
    Invoice,
    InvoiceDocument,
    InvoiceStatus,
    Line,
    LineKind,
    period_of,
)
from creditledger.domain.money import dollars

NOVEMBER = period_of(datetime(2026, 11, 17, tzinfo=UTC))
CREATED = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
OPENED = datetime(2026, 12, 3, 0, 5, tzinfo=UTC)
SELLER = ("Creditledger Inc.", "1 Market Street", "San Francisco, CA 94105")


def usage_line(description: str, amount: str, **extra: object) -> Line:
    nanos = dollars(amount)
    return Line(
        kind=LineKind.USAGE,
        description=description,
        amount=nanos,
        exact=nanos,
        **extra,  # type: ignore[arg-type]
    )


def document(
    lines: tuple[Line, ...] | None = None,
    *,
    status: InvoiceStatus = InvoiceStatus.OPEN,
    number: str | None = "CL-000042",
    team_name: str = "Acme Research",
    **extra: object,
) -> InvoiceDocument:
    if lines is None:
        lines = (
            usage_line("serverless llama-3.1-8b", "12.34", quantity=1_234_567, unit="tokens"),
            usage_line(
                "serverless mixtral-8x7b (late usage for October 2026)",
                "0.56",
                late=True,
                late_period=period_of(datetime(2026, 10, 2, tzinfo=UTC)),
            ),
            Line(
                kind=LineKind.CARRIED,
                description="Carried from an earlier invoice",
                amount=-dollars("0.01"),
                exact=-dollars("0.012"),
            ),
        )
    total = sum(line.amount for line in lines)
    fields: dict[str, object] = {
        "opened_at": None if status is InvoiceStatus.DRAFT else OPENED,
        **extra,
    }
    invoice = Invoice(
        id="inv_0123456789abcdef",
        team_id="team_1",
        period=NOVEMBER,
        status=status,
        number=number,
        lines=lines,
        credits_applied=CreditsApplied(promotional=dollars("5.00"), prepaid=dollars("20.25")),
        subtotal=total,
        total=total,
        exact=total,
        carry=0,
        created_at=CREATED,
        **fields,  # type: ignore[arg-type]
    )
    return InvoiceDocument(invoice=invoice, team_name=team_name, seller=SELLER)


def pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def text_of(doc: InvoiceDocument) -> str:
    return "\n".join(pages(render_invoice(doc)))


def test_it_shows_the_number_lines_credits_and_totals() -> None:
    doc = document()
    data = render_invoice(doc)
    assert data.startswith(b"%PDF-")
    text = "\n".join(pages(data))
    for expected in (
        "Creditledger Inc.",
        "San Francisco, CA 94105",
        "Acme Research",
        "CL-000042",
        "1 November 2026 – 30 November 2026",
        "2026-12-01",  # created
        "2026-12-03",  # opened
        "Open",
        "1,234,567 tokens",
        "$5.00",  # promotional credits
        "$20.25",  # prepaid credits
    ):
        assert expected in text, expected
    for line in doc.invoice.lines:
        assert line.description in text
    assert "$12.34" in text
    assert "$0.56" in text
    assert "-$0.01" in text
    late = doc.invoice.lines[1].description
    assert re.search(r"\blate\b", text.replace(late, "")), "the late line is marked"
    assert re.search(r"Total\s*\$12\.89", text)
    assert re.search(r"Amount due\s*\$12\.89", text)


def test_the_same_document_gives_the_same_bytes() -> None:
    doc = document()
    first = render_invoice(doc)
    assert render_invoice(doc) == first
    assert render_invoice(document()) == first
    # The creation date is the invoice's, not the time of rendering.
    assert b"/CreationDate (D:20261201000500Z)" in first
    assert render_invoice(document(number="CL-000043")) != first


def test_a_draft_says_draft() -> None:
    text = text_of(document(status=InvoiceStatus.DRAFT, number=None))
    assert "Draft" in text
    assert "CL-" not in text


def test_a_thousand_lines_break_across_pages_with_the_header_on_each() -> None:
    lines = tuple(
        usage_line(f"serverless model-{i:04d}", f"{i // 100}.{i % 100:02d}") for i in range(1000)
    )
    doc = document(lines)
    texts = pages(render_invoice(doc))
    assert len(texts) > 10
    for page_text in texts:
        assert "Description" in page_text
        assert "Amount" in page_text
    text = "\n".join(texts)
    for i in range(1000):
        assert f"serverless model-{i:04d}" in text
    assert "$9.99" in text
    total = sum(line.amount for line in lines)
    assert total == dollars("4995.00")
    assert re.search(r"Amount due\s*\$4995\.00", texts[-1])
    assert f"Page {len(texts)} of {len(texts)}" in texts[-1]


def test_long_descriptions_wrap_and_very_long_ones_are_cut() -> None:
    words = " ".join(f"word{i}" for i in range(24))
    endless = "x" * 2000
    huge = "very long description " * 500
    doc = document(
        (
            usage_line(words, "1.00"),
            usage_line(endless, "2.00"),
            usage_line(huge, "3.00"),
        )
    )
    texts = pages(render_invoice(doc))
    assert len(texts) == 1
    text = texts[0]
    for i in range(24):  # fits in three lines: every word is there
        assert f"word{i}" in text
    assert "x" * 30 in text
    assert "x" * 2000 not in text.replace("\n", "")
    assert "…" in text
    assert "$1.00" in text
    assert "$2.00" in text
    assert "$3.00" in text


def test_any_unicode_in_names_and_notes_prints_without_failing() -> None:
    team = "Ünïcødé 🚀 team ❤️ 👨‍👩‍👧 ő 漢字 \u202e\x00\ud800 {nb} end"
    doc = document(
        team_name=team,
        status=InvoiceStatus.VOID,
        voided_at=OPENED,
        void_note="Doppelt ausgestellt — 🙈\nbitte ignorieren",
        lines=(usage_line("modèle “spécial” 🤖", "1.50"),),
    )
    text = text_of(doc)
    assert "Ünïcødé" in text
    assert "{nb} end" in text
    assert "Void: Doppelt ausgestellt — ? bitte ignorieren" in text
    assert "modèle “spécial” ?" in text
    assert re.search(r"Amount due\s*\$0\.00", text)


def test_payment_attempts_and_paid_on() -> None:
    attempts = (
        Attempt(
            number=1,
            at=datetime(2026, 12, 3, 1, 0, tzinfo=UTC),
            outcome=AttemptOutcome.FAILED,
            reason="card_declined",
        ),
        Attempt(
            number=2, at=datetime(2026, 12, 4, 1, 0, tzinfo=UTC), outcome=AttemptOutcome.SUCCEEDED
        ),
    )
    paid_at = datetime(2026, 12, 4, 1, 0, 5, tzinfo=UTC)
    text = text_of(document(status=InvoiceStatus.PAID, attempts=attempts, paid_at=paid_at))
    assert "Attempt 1 on 2026-12-03: failed (card_declined)" in text
    assert "Attempt 2 on 2026-12-04: succeeded" in text
    assert "Paid on 2026-12-04" in text
    assert re.search(r"Total\s*\$12\.89", text)
    assert re.search(r"Amount due\s*\$0\.00", text)


def test_printable_keeps_what_the_core_fonts_have_and_replaces_the_rest() -> None:
    assert printable("Acme – “quoted” €5 …") == "Acme – “quoted” €5 …"
    assert printable("Zoë Őrs") == "Zoë Ors"
    assert printable("a\nb\tc\u00a0d") == "a b c d"
    assert printable("rocket 🚀 ❤️ 👨‍👩‍👧") == "rocket ? ? ???"
    assert printable("x\x00\u200b\u202e\ud800y") == "xy"
    assert printable("ﬁ①") == "fi1"
