"""How long the invoice PDF takes to render: an invoice of 1 line and one of 1,000 lines.

    .venv/bin/python bench/pdf.py            # 7 runs per figure after a warm-up
    .venv/bin/python bench/pdf.py --quick    # 3 runs
    make bench-pdf

In process, no database: ``render_invoice`` on an ``InvoiceDocument`` built here (usage lines
with quantities, every seventh a late line, a long description that has to wrap, a carried
line). Prints the median with min, max and spread, the ratio to each goal (1 line ≤ 50 ms,
1,000 lines ≤ 1 s) and the cost per line, and writes everything to
``bench/results/pdf-<stamp>.txt``.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import platform
import subprocess
import time
from datetime import UTC, datetime

import fpdf
import pypdf

import _common as c
from creditledger.adapters.pdf.invoice import render_invoice
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
from creditledger.domain.money import NANOS_PER_CENT, dollars

GOALS_MS = {1: 50.0, 1_000: 1_000.0}
PERIOD = period_of(datetime(2026, 11, 17, tzinfo=UTC))
LATE_PERIOD = period_of(datetime(2026, 10, 17, tzinfo=UTC))


def document(count: int) -> InvoiceDocument:
    lines: list[Line] = []
    for i in range(count):
        late = i % 7 == 6
        model = c.MODELS[i % len(c.MODELS)]
        description = f"serverless {model}-ft-{i:04d}"
        if late:
            description += " (late usage for October 2026)"
        if i == 1:
            description += " fine-tuned for long customer support transcripts" * 4
        amount = (i % 5_000 + 1) * NANOS_PER_CENT
        lines.append(
            Line(
                kind=LineKind.USAGE,
                description=description,
                amount=amount,
                exact=amount + 3,
                product="serverless",
                model=model,
                quantity=(i + 1) * 1_234 if i % 3 else None,
                unit="tokens" if i % 3 else None,
                late=late,
                late_period=LATE_PERIOD if late else None,
            )
        )
    if count > 1:
        lines[-1] = Line(
            kind=LineKind.CARRIED,
            description="Carried from an earlier invoice",
            amount=-NANOS_PER_CENT,
            exact=-NANOS_PER_CENT - 4,
        )
    total = sum(line.amount for line in lines)
    invoice = Invoice(
        id="inv_bench",
        team_id="team_bench",
        period=PERIOD,
        status=InvoiceStatus.OPEN,
        number="CL-000042",
        lines=tuple(lines),
        credits_applied=CreditsApplied(promotional=dollars("5.00"), prepaid=dollars("120.00")),
        subtotal=total,
        total=total,
        exact=total,
        carry=0,
        attempts=(
            Attempt(
                number=1,
                at=datetime(2026, 12, 3, 1, 0, tzinfo=UTC),
                outcome=AttemptOutcome.FAILED,
                reason="card_declined",
            ),
        ),
        created_at=datetime(2026, 12, 1, 0, 5, tzinfo=UTC),
        opened_at=datetime(2026, 12, 3, 0, 5, tzinfo=UTC),
        next_charge_at=datetime(2026, 12, 4, 1, 0, tzinfo=UTC),
    )
    return InvoiceDocument(
        invoice=invoice,
        team_name="Bench Team",
        seller=("Creditledger Inc.", "1 Market Street", "San Francisco, CA 94105"),
    )


def render_ms(doc: InvoiceDocument) -> float:
    started = time.perf_counter()
    render_invoice(doc)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 runs per figure")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 7)")
    args = parser.parse_args()
    runs: int = args.runs or (3 if args.quick else 7)
    out: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        out.append(line)

    say(
        f"pdf: render_invoice, fpdf2 {fpdf.__version__}; {runs} run(s) per figure after "
        f"1 warm-up; load average {c.machine_load()[0]:.1f}"
    )
    medians: dict[int, float] = {}
    for count, goal in GOALS_MS.items():
        doc = document(count)
        data = render_invoice(doc)
        pages = len(pypdf.PdfReader(io.BytesIO(data)).pages)
        same = render_invoice(doc) == data
        values = c.repeat(functools.partial(render_ms, doc), runs)
        figure = c.summary(values)
        medians[count] = figure["median"]
        say(
            f"  {count:>5,} line(s): {c.fmt(figure['median'], 'ms'):>9} "
            f"(min {c.fmt(figure['min'])}, max {c.fmt(figure['max'])}, "
            f"spread {figure['spread_pct']:.0f} %); "
            f"{pages} page(s), {len(data):,} bytes, same bytes twice: {same}"
        )
        say(
            f"         {figure['median'] / goal:.3f} × goal (≤ {goal:,.0f} ms): "
            f"{c.verdict(figure['median'], goal, higher_is_better=False)}"
        )
    per_line = (medians[1_000] - medians[1]) / 999
    say(f"  cost per extra line: {per_line * 1000:.0f} µs")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    stamp = datetime.now(UTC)
    c.RESULTS.mkdir(exist_ok=True)
    path = c.RESULTS / f"pdf-{stamp.strftime('%Y%m%dT%H%M%S')}.txt"
    header = (
        f"# bench/pdf.py, {stamp.isoformat(timespec='seconds')}, commit {commit or '?'}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"fpdf2 {fpdf.__version__}, pypdf {pypdf.__version__}\n"
    )
    path.write_text(header + "\n".join(out) + "\n")
    print(f"recorded {path}")


if __name__ == "__main__":
    main()
