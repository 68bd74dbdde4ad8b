"""Credit history at depth: a page of 50 for a team with 10 M ledger rows, and CSV export.

    .venv/bin/python bench/history.py                 # full run: 10 M rows
    .venv/bin/python bench/history.py --rows 1000000  # scaled down
    .venv/bin/python bench/history.py --quick         # smoke run: 600,000 rows, short runs

PostgreSQL only. The ledger is filled straight with ``generate_series`` SQL, consistent with
the schema: every usage transaction has its team-side posting (on the team's prepaid grant,
with ``balance_after_nanos``) and its platform-side posting, so it balances; the grant's
``remaining`` and the team's cached credit are moved by the total. The fill skips the
per-row foreign-key triggers (``session_replication_role = replica``: the rows reference
existing transactions and grants by construction) and commits asynchronously; the scratch
database is dropped afterwards.

Figures: p50/p99 of ``GET /v1/teams/{id}/credit-history`` (limit 50) over HTTP at a fixed
rate (open loop, 1 connection) at page 1 and at page 10,000 (the cursor of the entry
500,000 deep), asked by the team's admin (personal token) and by an operator (whose reads
are audited: one committed write each); beside them, in the same rounds and at the same
rate, C_hist_http: a bare ASGI app on the same server stack running the page's own keyset
statement (``_bare_history.py``), whose answers are checked equal to the page's. The raw
keyset SQL ceiling C_hist at the same two depths (and OFFSET at page 10,000 for contrast);
the CSV export of a 1 M-entry history, streamed, with the server's RSS growth sampled while
it streams.
"""

from __future__ import annotations

import argparse
import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa

import _common as c
from creditledger.domain.accounts import Role, TokenKind
from creditledger.domain.history import HistoryFilter, encode_cursor
from creditledger.services.context import Context
from creditledger.services.tokens import issue_token

PAGE = 50
DEEP_PAGE = 10_000
CHUNK = 500_000
CHARGE_NANOS = 1_000_000  # $0.001 per usage entry

# The goals, as the tables of bench/README.md give them: the page's p99 against
# C_hist_http's (a bare ASGI app running the page's SQL) at the same rate.
GOAL_P99_RATIO = 2.0
GOAL_EXPORT_RSS_MB = 100.0

FILL_TRANSACTIONS = """
INSERT INTO ledger_transactions (id, team_id, type, occurred_at, created_at, description,
                                 reference)
SELECT %(tag)s || lpad(CAST(i AS text), 10, '0'), %(team)s, 'usage', %(t0)s + i, %(t0)s + i,
       'Usage serverless llama-3.1-8b', 'evt-' || i
FROM generate_series(CAST(%(lo)s AS bigint), %(hi)s - 1) i
"""
FILL_POSTINGS = """
INSERT INTO postings (seq, transaction_id, account, amount_nanos, team_id, grant_id,
                      balance_after_nanos)
SELECT %(s0)s + 2 * i + side,
       %(tag)s || lpad(CAST(i AS text), 10, '0'),
       CASE side WHEN 0 THEN 'grant:' || %(grant)s ELSE 'platform:usage_revenue' END,
       CASE side WHEN 0 THEN -%(d)s ELSE %(d)s END,
       CASE side WHEN 0 THEN %(team)s END,
       CASE side WHEN 0 THEN %(grant)s END,
       CASE side WHEN 0 THEN %(credit)s - (i + 1) * %(d)s END
FROM generate_series(CAST(%(lo)s AS bigint), %(hi)s - 1) i, (VALUES (0), (1)) AS s(side)
"""

BY_OFFSET = """
SELECT p.seq, p.transaction_id, p.amount_nanos, p.grant_id, p.balance_after_nanos,
       tx.type, tx.occurred_at, tx.description, tx.reference, g.kind
FROM postings p
JOIN ledger_transactions tx ON tx.id = p.transaction_id
LEFT JOIN grants g ON g.id = p.grant_id
WHERE p.team_id = %s
ORDER BY p.seq DESC
OFFSET %s LIMIT 51
"""


PROBE_SEQ = 987_654_321_012_345
"""A keyset bound no real page asks for, to tell the captured statement's parameters apart."""


def page_statement(ctx: Context, team: str) -> dict[str, Any]:
    """The statement the page runs for its keyset read, as the repository sends it to
    psycopg, and what each of its named parameters holds (``team``, ``before``, ``limit``).

    C_hist and C_hist_http run exactly this, so they follow the page's SQL as it changes."""
    engine: sa.Engine = ctx.uow.engine  # type: ignore[attr-defined]
    seen: list[tuple[str, dict[str, Any]]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM postings" in statement and isinstance(params, dict):
            seen.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        with ctx.uow(write=False) as uow:
            uow.ledger.history(team, HistoryFilter(), PROBE_SEQ, PAGE + 1)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    if len(seen) != 1:
        raise RuntimeError(f"expected one history statement, saw {len(seen)}")
    statement, params = seen[0]
    holds = {team: "team", PROBE_SEQ: "before", PAGE + 1: "limit"}
    if any(value not in holds for value in params.values()):
        raise RuntimeError(f"unexpected parameters of the history statement: {params}")
    return {"sql": statement, "params": {name: holds[value] for name, value in params.items()}}


def keyset_args(spec: dict[str, Any], team: str, before: int) -> dict[str, Any]:
    values = {"team": team, "before": before, "limit": PAGE + 1}
    return {name: values[what] for name, what in spec["params"].items()}


def team_admin_token(ctx: Context, team: str) -> str:
    """A personal token of a new user who is ``team``'s admin."""
    with ctx.uow() as uow:
        now = ctx.clock.now()
        user_id = uow.new_id("user")
        uow.users.add(user_id, f"{user_id}@bench.invalid", ctx.passwords.hash("bench-pw-1"), now)
        uow.members.add(team, user_id, Role.ADMIN, now)
        token = issue_token(uow, ctx, TokenKind.PERSONAL, user_id, "bench admin")
        uow.commit()
    return token


def fill(url: str, team: str, rows: int, tag: str) -> float:
    """Add ``rows`` usage entries to ``team``'s history; returns the seconds it took."""
    dsn = c.libpq_url(url)
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        grant, credit = conn.execute(
            "SELECT id, remaining_nanos FROM grants WHERE team_id = %s AND kind = 'prepaid'",
            [team],
        ).fetchone() or ("", 0)
        team_credit = conn.execute(
            "SELECT credit_nanos FROM teams WHERE id = %s", [team]
        ).fetchone()
        assert team_credit is not None and rows * CHARGE_NANOS <= credit
        # Reserve the sequence range first, so the entries get seq numbers after any
        # posting made so far and nothing later reuses them.
        s0 = conn.execute("SELECT nextval('postings_seq_seq')").fetchone()
        assert s0 is not None
        conn.execute("SELECT setval('postings_seq_seq', %s)", [s0[0] + 2 * rows])
        t0 = int(time.time() * 1_000_000) - rows - 10_000_000
    base = {
        "tag": tag,
        "team": team,
        "grant": grant,
        "credit": team_credit[0],
        "d": CHARGE_NANOS,
        "t0": t0,
        "s0": s0[0],
    }

    def chunk(lo: int) -> None:
        hi = min(rows, lo + CHUNK)
        with psycopg.connect(dsn) as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute("SET synchronous_commit = off")
            conn.execute(FILL_TRANSACTIONS, {**base, "lo": lo, "hi": hi})
            conn.execute(FILL_POSTINGS, {**base, "lo": lo, "hi": hi})
            conn.commit()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(chunk, range(0, rows, CHUNK)))
    with psycopg.connect(dsn, autocommit=True) as conn:
        total = rows * CHARGE_NANOS
        conn.execute(
            "UPDATE grants SET remaining_nanos = remaining_nanos - %s WHERE id = %s",
            [total, grant],
        )
        conn.execute(
            "UPDATE teams SET credit_nanos = credit_nanos - %s, revision = revision + 1 "
            "WHERE id = %s",
            [total, team],
        )
        conn.execute("ANALYZE ledger_transactions")
        conn.execute("ANALYZE postings")
    return time.monotonic() - started


def check_fill(url: str, team: str) -> list[str]:
    """The invariants that concern the filled team, checked with plain SQL."""
    problems = []
    with psycopg.connect(c.libpq_url(url)) as conn:
        cached, remaining = conn.execute(
            "SELECT t.credit_nanos, (SELECT sum(remaining_nanos) FROM grants g "
            "WHERE g.team_id = t.id) FROM teams t WHERE t.id = %s",
            [team],
        ).fetchone() or (None, None)
        if cached != remaining:
            problems.append(f"I3: team credit {cached} but grants hold {remaining}")
        newest = conn.execute(
            "SELECT balance_after_nanos FROM postings WHERE team_id = %s ORDER BY seq DESC LIMIT 1",
            [team],
        ).fetchone()
        if newest is None or newest[0] != cached:
            problems.append(f"I3: newest balance_after {newest} but the team holds {cached}")
        # The newest 100,000 filled entries: each team-side posting is followed by the
        # platform side of the same transaction, for the opposite amount.
        unbalanced = conn.execute(
            "SELECT count(*) FROM (SELECT seq, transaction_id, amount_nanos FROM postings "
            "WHERE team_id = %s ORDER BY seq DESC LIMIT 100000) a "
            "LEFT JOIN postings b ON b.seq = a.seq + 1 "
            "WHERE b.seq IS NULL OR a.transaction_id <> b.transaction_id "
            "OR a.amount_nanos + b.amount_nanos <> 0",
            [team],
        ).fetchone()
        if unbalanced is None or unbalanced[0]:
            problems.append(f"I1: {unbalanced} unbalanced transactions among the newest")
    return problems


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.runs: int = args.runs
        self.warmup = 0 if args.quick else 1
        self.seconds: float = args.seconds
        self.rate: float = args.rate
        self.figures: dict[str, Any] = {}

    def beside(self, name: str, targets: dict[str, tuple[str, int, bytes]]) -> None:
        """p50 and p99 of each target (key → label, port, request) at the same rate,
        1 connection, open loop, taking turns run by run (a warm-up round first)."""
        p50s: dict[str, list[float]] = {key: [] for key in targets}
        p99s: dict[str, list[float]] = {key: [] for key in targets}
        for round_ in range(self.warmup + self.runs):
            for key, (_, port, request) in targets.items():
                out = c.load(port, [request], connections=1, duration=self.seconds, rate=self.rate)
                bad = {k: v for k, v in out["statuses"].items() if k != "200"}
                if bad:
                    raise RuntimeError(f"{key}: answers other than 200: {bad}")
                if round_ >= self.warmup:
                    p50s[key].append(out["latency_ms"]["p50"])
                    p99s[key].append(out["latency_ms"]["p99"])
        for key, (label, _, _) in targets.items():
            self.figures[key] = {
                "p99": c.show(f"{label}, {name} p99", p99s[key], "ms"),
                "p50": c.show(f"{label}, {name} p50", p50s[key], "ms"),
                "rate": self.rate,
            }

    def keyset_ceiling(
        self, url: str, team: str, before: dict[str, int], spec: dict[str, Any]
    ) -> None:
        with psycopg.connect(c.libpq_url(url), autocommit=True) as conn:
            for name, seq in before.items():
                p50s: list[float] = []

                def measure(seq: int = seq, p50s: list[float] = p50s) -> float:
                    times = []
                    for _ in range(300 if self.runs == 1 else 1000):
                        started = time.perf_counter()
                        rows = conn.execute(
                            spec["sql"], keyset_args(spec, team, seq), prepare=True
                        ).fetchall()
                        times.append(1000 * (time.perf_counter() - started))
                        assert len(rows) == PAGE + 1
                    p50s.append(c.percentile(times, 50))
                    return c.percentile(times, 99)

                values = c.repeat(measure, self.runs, self.warmup)
                self.figures[f"C_hist_{name}"] = {
                    "p99": c.show(f"C_hist keyset SQL, {name} p99", values, "ms"),
                    "p50": c.show(f"C_hist keyset SQL, {name} p50", p50s[-self.runs :], "ms"),
                }

            def offset() -> float:
                started = time.perf_counter()
                conn.execute(BY_OFFSET, [team, (DEEP_PAGE - 1) * PAGE]).fetchall()
                return 1000 * (time.perf_counter() - started)

            values = c.repeat(offset, self.runs, 0)
            self.figures["offset_deep"] = c.show(
                f"for contrast: OFFSET {(DEEP_PAGE - 1) * PAGE:,} (page {DEEP_PAGE:,})",
                values,
                "ms",
            )

    def export(self, server: c.Server, token: str, team: str, rows: int) -> None:
        pid = server.worker_pids()[0]
        results: list[dict[str, float]] = []
        for _ in range(self.runs):
            baseline = c.proc_status_kib(pid, "VmRSS")
            peak = [baseline]
            done = threading.Event()

            def sample(peak: list[int] = peak, done: threading.Event = done) -> None:
                while not done.wait(0.01):
                    peak[0] = max(peak[0], c.proc_status_kib(pid, "VmRSS"))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
            conn.request(
                "GET",
                f"/v1/teams/{team}/credit-history.csv",
                headers={"Authorization": f"Bearer {token}"},
            )
            answer = conn.getresponse()
            lines = size = 0
            while chunk := answer.read(1 << 16):
                lines += chunk.count(b"\n")
                size += len(chunk)
            took = time.monotonic() - started
            conn.close()
            done.set()
            sampler.join()
            if answer.status != 200 or lines - 1 < rows:
                raise RuntimeError(f"export: status {answer.status}, {lines - 1} rows")
            results.append(
                {
                    "rows": lines - 1,
                    "mb": size / 2**20,
                    "seconds": took,
                    "rows_per_s": (lines - 1) / took,
                    "rss_before_mb": baseline / 1024,
                    "rss_peak_mb": peak[0] / 1024,
                    "rss_growth_mb": (peak[0] - baseline) / 1024,
                    "chunked": answer.getheader("transfer-encoding") == "chunked",
                }
            )
            r = results[-1]
            print(
                f"  CSV export: {r['rows']:,} rows, {r['mb']:.0f} MB in {took:.1f} s "
                f"({r['rows_per_s']:,.0f} rows/s); server RSS {r['rss_before_mb']:.0f} → "
                f"{r['rss_peak_mb']:.0f} MB (growth {r['rss_growth_mb']:.1f} MB)",
                flush=True,
            )
        self.figures["export"] = {
            "runs": results,
            "rows_per_s": c.summary([r["rows_per_s"] for r in results]),
            "rss_growth_mb": c.summary([r["rss_growth_mb"] for r in results]),
            "first_run_rss_growth_mb": results[0]["rss_growth_mb"],
        }


def page_request(token: str, team: str, cursor: str | None) -> bytes:
    query = f"limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
    return c.raw_request("GET", f"/v1/teams/{team}/credit-history?{query}", token)


def get_json(port: int, path: str, token: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    if answer.status != 200:
        raise RuntimeError(f"GET {path}: {answer.status} {body[:200]!r}")
    return orjson.loads(body)


def same_answers(
    port: int, bare_port: int, token: str, team: str, cursors: dict[str, str | None]
) -> str:
    """Whether C_hist_http's answers are the page's, document for document."""
    for name, cursor in cursors.items():
        query = f"limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
        path = f"/v1/teams/{team}/credit-history?{query}"
        ours, bare = get_json(port, path, token), get_json(bare_port, path, token)
        if ours != bare:
            raise RuntimeError(f"C_hist_http answers {name} differently from the page")
    return "yes"


def follow_cursors(port: int, token: str, team: str, pages: int) -> list[str]:
    """Walk ``pages`` pages by their cursors; the entries must run newest first, no gaps."""
    problems = []
    cursor: str | None = None
    last_balance: int | None = None
    seen = 0
    for _ in range(pages):
        query = f"limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
        body = get_json(port, f"/v1/teams/{team}/credit-history?{query}", token)
        for entry in body["data"]:
            balance = int(Decimal(entry["balance_after"]) * 10**9)
            if last_balance is not None and balance != last_balance + CHARGE_NANOS:
                problems.append(f"entry {seen}: balance {balance} after {last_balance}")
            last_balance = balance
            seen += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    return problems[:5]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="600,000 rows, one short run each")
    parser.add_argument("--rows", type=int, default=None, help="history rows (default 10 M)")
    parser.add_argument("--export-rows", type=int, default=None, help="default 1 M")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--seconds", type=float, default=None, help="length of one run")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s (open loop)")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.5 if args.quick else 3.0)
    rows: int = args.rows or (600_000 if args.quick else 10_000_000)
    export_rows: int = args.export_rows or (50_000 if args.quick else 1_000_000)
    if rows < DEEP_PAGE * PAGE + 1000:
        raise SystemExit(f"--rows must be above {DEEP_PAGE * PAGE + 1000:,} to reach page 10,000")
    deep_page = DEEP_PAGE
    bench = Bench(args)
    began = time.monotonic()
    load_at_start = c.machine_load()[0]
    print(
        f"history: {rows:,} rows; {args.runs} run(s) of {args.seconds:.1f} s per figure after "
        f"{bench.warmup} warm-up; load average {load_at_start:.1f}",
        flush=True,
    )
    f = bench.figures
    checks: dict[str, Any] = {}
    with c.scratch_database("postgres") as url:
        ctx = c.context(url)
        (deep, wide), operator, _ = c.seed(ctx, 2)
        admin = team_admin_token(ctx, deep)
        codec = ctx.cursors()  # the server seals cursors with the same database secret
        spec = page_statement(ctx, deep)
        ctx.uow.dispose()
        took = fill(url, deep, rows, "txn_fill_a_")
        print(f"  filled {rows:,} entries in {took:.0f} s ({rows / took:,.0f} rows/s)", flush=True)
        took_export = fill(url, wide, export_rows, "txn_fill_b_")
        print(f"  filled {export_rows:,} entries for the export in {took_export:.0f} s", flush=True)
        checks["fill_seconds"] = {"history": took, "export": took_export}
        checks["fill_problems"] = check_fill(url, deep) + check_fill(url, wide)
        print(f"  fill checks: {checks['fill_problems'] or 'clean'}", flush=True)
        with psycopg.connect(c.libpq_url(url)) as conn:
            top = conn.execute(
                "SELECT max(seq) + 1 FROM postings WHERE team_id = %s", [deep]
            ).fetchone()
            depth = conn.execute(
                "SELECT seq FROM postings WHERE team_id = %s ORDER BY seq DESC OFFSET %s LIMIT 1",
                [deep, (deep_page - 1) * PAGE - 1],
            ).fetchone()
        assert top is not None and depth is not None
        before = {"page 1": int(top[0]), f"page {deep_page:,}": int(depth[0])}
        print("ceiling: raw keyset SQL (psycopg, prepared)", flush=True)
        bench.keyset_ceiling(url, deep, before, spec)
        bare_env = {
            "BARE_HISTORY_DSN": c.libpq_url(url),
            "BARE_HISTORY_SQL": orjson.dumps(spec).decode(),
        }
        with (
            c.Server({"CREDITLEDGER_DATABASE_URL": url}, workers=1) as server,
            c.Server(bare_env, app="_bare_history:app", factory=False) as bare,
        ):
            checks["cursor_walk_problems"] = follow_cursors(server.port, admin, deep, 5)
            print(f"  cursor walk, 5 pages: {checks['cursor_walk_problems'] or 'clean'}")
            cursors = {
                "page 1": None,
                f"page {deep_page:,}": encode_cursor(codec, deep, before[f"page {deep_page:,}"]),
            }
            checks["same_answers"] = same_answers(server.port, bare.port, admin, deep, cursors)
            print(f"  C_hist_http answers as the page does: {checks['same_answers']}")
            print(
                f"over HTTP, 1 worker each, 1 connection at {args.rate:.0f} requests/s, "
                f"taking turns with C_hist_http",
                flush=True,
            )
            for name, cursor in cursors.items():
                bench.beside(
                    name,
                    {
                        f"http_{name}": (
                            "HTTP, team admin",
                            server.port,
                            page_request(admin, deep, cursor),
                        ),
                        f"http_operator_{name}": (
                            "HTTP, operator (audited)",
                            server.port,
                            page_request(operator, deep, cursor),
                        ),
                        f"C_hist_http_{name}": (
                            "C_hist_http",
                            bare.port,
                            page_request(admin, deep, cursor),
                        ),
                    },
                )
            print(f"CSV export of {export_rows:,} entries", flush=True)
            bench.export(server, operator, wide, export_rows)
    lines = []
    for name in ("page 1", f"page {deep_page:,}"):
        ceiling = f[f"C_hist_http_{name}"]["p99"]["median"]
        raw = f[f"C_hist_{name}"]["p99"]["median"]
        lines.append(
            f"  {name}: C_hist_http p99 {ceiling:.2f} ms (p50 "
            f"{f[f'C_hist_http_{name}']['p50']['median']:.2f}); raw SQL C_hist p99 {raw:.2f} ms"
        )
        for key, who in ((f"http_{name}", "team admin"), (f"http_operator_{name}", "operator")):
            p99 = f[key]["p99"]["median"]
            ratio = p99 / ceiling
            lines.append(
                f"    {who}: p50 {f[key]['p50']['median']:.2f} ms, p99 {p99:.2f} ms = "
                f"{ratio:.2f} × C_hist_http ({p99 / raw:.1f} × C_hist)   "
                f"goal ≤ {GOAL_P99_RATIO:g} ×: {c.verdict(ratio, GOAL_P99_RATIO, False)}"
            )
    p1 = f["http_page 1"]["p99"]["median"]
    pd = f[f"http_page {deep_page:,}"]["p99"]["median"]
    lines.append(f"  page {deep_page:,} vs page 1, p99: {pd / p1:.2f}×")
    growth = max(r["rss_growth_mb"] for r in f["export"]["runs"])
    lines.append(
        f"  CSV export: {f['export']['rows_per_s']['median']:,.0f} rows/s, largest RSS growth "
        f"{growth:.1f} MB   goal ≤ {GOAL_EXPORT_RSS_MB:.0f} MB: "
        f"{c.verdict(growth, GOAL_EXPORT_RSS_MB, False)}"
    )
    c.finish(
        "history",
        began,
        lines,
        args,
        bench.warmup,
        {
            "rows": rows,
            "export_rows": export_rows,
            "rate": args.rate,
            "page": PAGE,
            "deep_page": deep_page,
            "goal_p99_ratio": GOAL_P99_RATIO,
        },
        figures=f,
        checks=checks,
        load_average_at_start=load_at_start,
    )


if __name__ == "__main__":
    main()
