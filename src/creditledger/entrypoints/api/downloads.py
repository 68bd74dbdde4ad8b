"""The two files people download, for the API and the Billing page alike: the credit
history as CSV and an invoice as PDF."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime

from fastapi import Response
from fastapi.responses import StreamingResponse

from creditledger.adapters.pdf.invoice import render_invoice
from creditledger.domain.history import HistoryEntry
from creditledger.domain.invoices import InvoiceDocument
from creditledger.entrypoints.api.schemas import HISTORY_COLUMNS, history_public

CSV_CHUNK_ROWS = 500


def history_csv(entries: Iterable[HistoryEntry], team_id: str, now: datetime) -> StreamingResponse:
    """The entries as CSV, one row per entry with the columns of the JSON list, streamed."""

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for n, entry in enumerate(entries, 1):
            writer.writerow(history_public(entry).model_dump())
            if n % CSV_CHUNK_ROWS == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    stamp = now.strftime("%Y%m%d")
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="credit-history-{team_id}-{stamp}.csv"'
        },
    )


def invoice_pdf(document: InvoiceDocument) -> Response:
    name = document.invoice.number or f"draft-{document.invoice.period.start:%Y-%m}"
    return Response(
        content=render_invoice(document),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="invoice-{name}.pdf"'},
    )
