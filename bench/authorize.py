"""``POST /v1/authorize`` latency and capacity beside C_auth, and the decision in process.

    .venv/bin/python bench/authorize.py            # full run, ~4 minutes
    .venv/bin/python bench/authorize.py --quick    # smoke run

C_auth is a bare ASGI app on the same server stack (uvicorn, httptools, uvloop) that
answers the same authorize requests from a dict (``_bare_asgi.py``); each HTTP figure of
ours is measured with C_auth's right after it, under the same load, and reported as a
ratio. Over HTTP (a uvicorn server subprocess; the load generator is another process):
the maximum rate of one worker (closed loop, 16 connections); p99 at a fixed rate (open
loop, each request's latency counted from its scheduled start, so queueing counts) at
1 connection and at 16 connections at half the maximum rate; p99 at 1 connection while
usage ingestion saturates a 2-worker server; the maximum rate when every request places
a hold (``request_id`` + ``estimate``); staleness: a usage event committed in this
process, then the server asked until its decision shows it. In process:
``Authorizer.authorize`` with a warm cache and the pure ``decide`` in µs. The teams are
on tier 5 and requests rotate over 1,000 of them, so the rate limiter never refuses.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

import _common as c
from creditledger.bootstrap import change_counter, change_feed
from creditledger.domain.accounts import BillingMode
from creditledger.domain.grants import UsageScope
from creditledger.services.authorize import Authorizer, decide
from creditledger.services.context import Context
from creditledger.services.usage import ingest_usage

TEAMS = 1_000
SCOPE = UsageScope("serverless", "llama-3.1-8b")

# The goals, as the tables of bench/README.md give them: ratios to C_auth, a bare ASGI
# app on the same server stack answering the same requests from a dict.
GOAL_RATE_RATIO = 0.5
GOAL_P99_1_RATIO = 2.0
GOAL_P99_16_RATIO = 3.0
GOAL_P99_LOADED_RATIO = 5.0
GOAL_HOLDS_RATIO = 0.5
GOAL_DECISION_P99_US = 20.0
GOAL_STALENESS_MS = 100.0
STALENESS_SAMPLES = 30


def authorize_requests(token: str, teams: list[str]) -> list[bytes]:
    return [
        c.raw_request(
            "POST",
            "/v1/authorize",
            token,
            orjson.dumps({"team_id": t, "product": SCOPE.product, "model": SCOPE.model}),
        )
        for t in teams
    ]


HOLD_REQUESTS = 50_000
"""Distinct request ids for the run with holds (the load generator cycles its list)."""


def hold_requests(token: str, teams: list[str], prefix: str) -> list[bytes]:
    """Authorizations that each hold a tiny estimate under their own ``request_id``."""
    return [
        c.raw_request(
            "POST",
            "/v1/authorize",
            token,
            orjson.dumps(
                {
                    "team_id": teams[n % len(teams)],
                    "product": SCOPE.product,
                    "model": SCOPE.model,
                    "request_id": f"{prefix}-{n}",
                    "estimate": {"amount": "0.000001"},
                }
            ),
        )
        for n in range(HOLD_REQUESTS)
    ]


def ingest_requests(token: str, teams: list[str], prefix: str, count: int) -> list[bytes]:
    at = datetime.now(UTC)
    return [
        c.raw_request(
            "POST",
            "/v1/usage-events",
            token,
            orjson.dumps({"events": c.events(teams, 1000, f"{prefix}-{b}", at)}),
        )
        for b in range(count)
    ]


def setup(ctx: Context) -> tuple[list[str], str]:
    teams, _, service = c.seed(ctx, TEAMS)
    with ctx.uow() as uow:
        for team in teams:
            uow.teams.set_billing(team, BillingMode.PREPAID, 5)
        uow.commit()
    return teams, service


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.runs: int = args.runs
        self.warmup = 0 if args.quick else 1
        self.seconds: float = args.seconds
        self.figures: dict[str, Any] = {}
        self.serial = 0

    def figure(
        self, key: str, label: str, measure: Callable[[], float], unit: str, extra: str = ""
    ) -> float:
        values = c.repeat(measure, self.runs, self.warmup)
        self.figures[key] = c.show(label, values, unit, extra)
        return float(statistics.median(values))

    def open_loop(
        self,
        key: str,
        label: str,
        port: int,
        requests: list[bytes],
        connections: int,
        rate: float,
        background: Callable[[], c.Load] | None = None,
    ) -> tuple[float, float]:
        """p50 and p99 (ms) at a fixed rate; each run also keeps its own figures."""
        p50s: list[float] = []
        details: list[dict[str, Any]] = []

        def measure() -> float:
            side = background() if background is not None else None
            if side is not None:
                time.sleep(0.5)
            out = c.load(port, requests, connections=connections, duration=self.seconds, rate=rate)
            side_out = side.finish() if side is not None else None
            bad = {k: v for k, v in out["statuses"].items() if k != "200"}
            if bad:
                raise RuntimeError(f"answers other than 200: {bad}")
            p50s.append(out["latency_ms"]["p50"])
            details.append({"load": out, "background": side_out})
            return float(out["latency_ms"]["p99"])

        values = c.repeat(measure, self.runs, self.warmup)
        p50s = p50s[-self.runs :]
        self.figures[key] = {
            "p99": c.show(f"{label} p99", values, "ms"),
            "p50": c.show(f"{label} p50", p50s, "ms"),
            "rate": rate,
            "connections": connections,
            "runs": details[-self.runs :],
        }
        return statistics.median(p50s), statistics.median(values)

    def capacity(self, key: str, label: str, port: int, requests: list[bytes]) -> float:
        def measure() -> float:
            out = c.load(port, requests, connections=16, duration=self.seconds)
            return float(out["requests_per_s"])

        return self.figure(key, label, measure, "req/s")

    def in_process(self, backend: str, ctx: Context, teams: list[str]) -> None:
        # As a server builds it: on PostgreSQL, listening for changes (decisions from memory).
        authorizer = Authorizer(ctx, change_feed(ctx.settings), change_counter(ctx.settings))
        principal = c.service_principal()
        for team in teams:
            authorizer.authorize(principal, team, SCOPE)  # warm the cache
        calls = 2_000 if self.runs == 1 else 5_000
        samples: dict[str, list[float]] = {"authorize": [], "decide": []}

        def authorize_p99() -> float:
            times = []
            for n in range(calls):
                team = teams[n % len(teams)]
                started = time.perf_counter_ns()
                decision = authorizer.authorize(principal, team, SCOPE)
                times.append((time.perf_counter_ns() - started) / 1000)
                if not decision.allowed:
                    raise RuntimeError(f"refused: {decision.reason}")
            samples["authorize"].append(c.percentile(times, 50))
            return c.percentile(times, 99)

        with ctx.uow(write=False) as uow:
            first = uow.teams.get(teams[0])
            grants = uow.grants.for_team(teams[0])
        assert first is not None
        now = ctx.clock.now()

        def decide_p99() -> float:
            times = []
            for _ in range(50_000):
                started = time.perf_counter_ns()
                decide(first, grants, SCOPE, now)
                times.append((time.perf_counter_ns() - started) / 1000)
            samples["decide"].append(c.percentile(times, 50))
            return c.percentile(times, 99)

        serial = iter(range(10**9))

        def holds_p99() -> float:
            times = []
            for n in range(calls):
                team = teams[n % len(teams)]
                rid = f"inproc-{next(serial)}"
                started = time.perf_counter_ns()
                decision = authorizer.authorize(principal, team, SCOPE, rid, {"amount": "0.000001"})
                times.append((time.perf_counter_ns() - started) / 1000)
                if decision.hold is None:
                    raise RuntimeError(f"no hold: {decision.reason}")
            samples["holds"].append(c.percentile(times, 50))
            return c.percentile(times, 99)

        samples["holds"] = []
        whats = {
            "authorize": "Authorizer.authorize (warm)",
            "holds": "Authorizer.authorize with a hold",
            "decide": "decide()",
        }
        for name, measure in (
            ("authorize", authorize_p99),
            ("holds", holds_p99),
            ("decide", decide_p99),
        ):
            what = whats[name]
            values = c.repeat(measure, self.runs, self.warmup)
            p50 = samples[name][-self.runs :]
            self.figures[f"{backend}_inproc_{name}"] = {
                "from_memory": authorizer.feed is not None,
                "p99": c.show(f"{backend} in-process {what} p99", values, "µs"),
                "p50": c.show(f"{backend} in-process {what} p50", p50, "µs"),
            }
        authorizer.close()

    def http(
        self,
        backend: str,
        ctx: Context,
        url: str,
        service: str,
        teams: list[str],
        rate_1: float,
        auth_port: int,
    ) -> None:
        """Each figure of ours, and C_auth's under the same load right after it."""
        requests = authorize_requests(service, teams)
        env = {"CREDITLEDGER_DATABASE_URL": url}
        with c.Server(env, workers=1) as server:
            c.load(server.port, requests, connections=16, duration=60.0, once=True)  # warm
            rate = self.capacity(
                f"{backend}_max_rate_1w",
                f"{backend} max rate, 1 worker, 16 conns",
                server.port,
                requests,
            )
            self.capacity(
                f"{backend}_C_auth_max_rate", "C_auth max rate, 16 conns", auth_port, requests
            )
            for port, name in ((server.port, backend), (auth_port, "C_auth")):
                self.open_loop(
                    f"{backend}_{'' if port == server.port else 'C_auth_'}1conn",
                    f"{name} 1 conn @ {rate_1:.0f}/s",
                    port,
                    requests,
                    1,
                    rate_1,
                )
            self.capacity(
                f"{backend}_max_rate_holds",
                f"{backend} max rate with holds, 1 worker, 16 conns",
                server.port,
                hold_requests(service, teams, f"h-{time.time_ns()}"),
            )
            rate_16 = round(0.5 * rate, -1)
            self.figures[f"{backend}_16conn_rate"] = rate_16
            for port, name in ((server.port, backend), (auth_port, "C_auth")):
                self.open_loop(
                    f"{backend}_{'' if port == server.port else 'C_auth_'}16conn",
                    f"{name} 16 conns @ {rate_16:.0f}/s (½ max)",
                    port,
                    requests,
                    16,
                    rate_16,
                )
            self.staleness(backend, ctx, server.port, service, teams[0])
            with c.Server(env, workers=2) as busy:
                self.loaded(
                    backend,
                    requests,
                    service,
                    teams,
                    rate_1,
                    busy.port,
                    {
                        "": busy.port,  # authorizations on the workers that charge the batches
                        "dedicated_": server.port,  # on a worker of their own, same database
                        "C_auth_": auth_port,
                    },
                )

    def loaded(
        self,
        backend: str,
        requests: list[bytes],
        service: str,
        teams: list[str],
        rate_1: float,
        busy_port: int,
        targets: dict[str, int],
    ) -> None:
        """p99 at 1 connection while usage batches saturate the 2 workers of ``busy_port``."""
        for _ in range(4):  # warm both workers (the kernel picks which takes a connection)
            c.load(busy_port, requests, connections=16, duration=60.0, once=True)

        def ingestion() -> c.Load:
            self.serial += 1
            batches = ingest_requests(service, teams, f"bg-{self.serial}-{time.time_ns()}", 60)
            return c.Load(
                busy_port,
                batches,
                connections=2,
                duration=self.seconds + 1.0,
                once=True,
                count_field="accepted",
            )

        names = {"": f"{backend} (same workers)", "dedicated_": f"{backend} (own worker)"}
        for prefix, port in targets.items():
            self.open_loop(
                f"{backend}_{prefix}1conn_loaded",
                f"{names.get(prefix, 'C_auth')} 1 conn @ {rate_1:.0f}/s + ingestion on 2 workers",
                port,
                requests,
                1,
                rate_1,
                background=ingestion,
            )

    def staleness(self, backend: str, ctx: Context, port: int, service: str, team: str) -> None:
        """A usage event charged in this process, then the server asked until its
        decision shows it: the time from the commit to the first answer that does."""
        principal = c.service_principal()
        conn = http.client.HTTPConnection("127.0.0.1", port)
        body = orjson.dumps({"team_id": team, "product": SCOPE.product, "model": SCOPE.model})
        headers = {"Authorization": f"Bearer {service}", "Content-Type": "application/json"}

        def available() -> str:
            conn.request("POST", "/v1/authorize", body, headers)
            answer: dict[str, Any] = orjson.loads(conn.getresponse().read())
            return str(answer["available"])

        serial = itertools.count()

        def measure() -> float:
            times = []
            for _ in range(STALENESS_SAMPLES):
                before = available()
                prefix = f"stale-{time.time_ns()}-{next(serial)}"
                ingest_usage(ctx, principal, c.events([team], 1, prefix, datetime.now(UTC)))
                committed = time.perf_counter()
                while available() == before:
                    if time.perf_counter() - committed > 10:
                        raise RuntimeError("the charge was not seen in 10 s")
                times.append((time.perf_counter() - committed) * 1000)
            return c.percentile(times, 99)

        self.figure(
            f"{backend}_staleness",
            f"{backend} staleness, commit here → decision there, p99",
            measure,
            "ms",
        )
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short run per figure")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--seconds", type=float, default=None, help="length of one run")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s at 1 connection")
    parser.add_argument("--backends", default="postgres,sqlite", help="postgres, sqlite or both")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.0 if args.quick else 3.0)
    bench = Bench(args)
    began = time.monotonic()
    print(
        f"authorize: {args.runs} run(s) of {args.seconds:.1f} s per figure after "
        f"{bench.warmup} warm-up; load average {c.machine_load()[0]:.1f}; "
        f"uvicorn HTTP: {c.http_implementation()}",
        flush=True,
    )
    backends = args.backends.split(",")
    # C_auth: a bare ASGI app on the same server stack, measured beside each figure.
    with c.Server({}, app="_bare_asgi:app", factory=False) as bare:
        for backend in ("postgres", "sqlite"):
            if backend not in backends:
                continue
            with c.scratch_database(backend) as url:
                ctx = c.context(url)
                teams, service = setup(ctx)
                c.checkpoint(url)
                print(f"{backend}: in process", flush=True)
                bench.in_process(backend, ctx, teams)
                print(f"{backend}: over HTTP, beside C_auth", flush=True)
                bench.http(backend, ctx, url, service, teams, args.rate, bare.port)
                ctx.uow.dispose()
    f = bench.figures
    lines = []
    for backend in backends:

        def med(key: str, which: str = "p99", backend: str = backend) -> float:
            return float(f[f"{backend}_{key}"][which]["median"])

        rate = f[f"{backend}_max_rate_1w"]["median"]
        auth_rate = f[f"{backend}_C_auth_max_rate"]["median"]
        holds = f[f"{backend}_max_rate_holds"]["median"]

        def p99_line(label: str, key: str, goal: float, ceiling: str | None = None) -> str:
            ours, ceiling_p99 = med(key), med(ceiling or f"C_auth_{key}")
            ratio = ours / ceiling_p99
            return (
                f"  {label}: {ours:.2f} ms = {ratio:.2f} × C_auth's {ceiling_p99:.2f} ms"
                f"   goal ≤ {goal:g} ×: {c.verdict(ratio, goal, False)}"
            )

        lines += [
            f"{backend}",
            f"  max rate per worker: {rate:,.0f} req/s = {rate / auth_rate:.2f} × C_auth "
            f"({auth_rate:,.0f})   goal ≥ {GOAL_RATE_RATIO} ×: "
            f"{c.verdict(rate / auth_rate, GOAL_RATE_RATIO)}",
            p99_line("p99, 1 conn", "1conn", GOAL_P99_1_RATIO),
            p99_line(
                f"p99, 16 conns @ {f[f'{backend}_16conn_rate']:.0f}/s", "16conn", GOAL_P99_16_RATIO
            ),
            p99_line(
                "p99 with ingestion on the same workers", "1conn_loaded", GOAL_P99_LOADED_RATIO
            ),
            p99_line(
                "p99 with ingestion on other workers",
                "dedicated_1conn_loaded",
                GOAL_P99_LOADED_RATIO,
                ceiling="C_auth_1conn_loaded",
            ),
            f"  max rate with holds: {holds:,.0f} req/s = {holds / rate:.2f} × without"
            f"   goal ≥ {GOAL_HOLDS_RATIO} ×: {c.verdict(holds / rate, GOAL_HOLDS_RATIO)}",
            f"  in-process Authorizer.authorize p99: {med('inproc_authorize'):.1f} µs"
            f"   goal ≤ {GOAL_DECISION_P99_US:.0f} µs: "
            f"{c.verdict(med('inproc_authorize'), GOAL_DECISION_P99_US, False)}",
            f"  in-process Authorizer.authorize with a hold p99: {med('inproc_holds'):.1f} µs",
            f"  in-process decide() p99: {med('inproc_decide'):.1f} µs",
            f"  staleness p99: {f[f'{backend}_staleness']['median']:.1f} ms"
            f"   goal ≤ {GOAL_STALENESS_MS:.0f} ms: "
            f"{c.verdict(f[f'{backend}_staleness']['median'], GOAL_STALENESS_MS, False)}",
        ]
    c.finish(
        "authorize",
        began,
        lines,
        args,
        bench.warmup,
        {
            "rate_1conn": args.rate,
            "teams": TEAMS,
            "http": c.http_implementation(),
        },
        figures=f,
    )


if __name__ == "__main__":
    main()
