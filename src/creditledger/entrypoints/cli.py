"""The ``creditledger`` command."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db.engine import missing_sqlite_file
from creditledger.bootstrap import build_context, migrate_database
from creditledger.config import Settings
from creditledger.domain.accounts import TokenKind
from creditledger.domain.errors import CreditLedgerError, InvalidRequest
from creditledger.domain.grants import Scope
from creditledger.domain.money import format_amount
from creditledger.domain.promo_codes import PromoCode
from creditledger.entrypoints.jobs import JOBS, JobRunner
from creditledger.services.access import system_operator
from creditledger.services.context import Context
from creditledger.services.demo import load_demo
from creditledger.services.grants import OperatorGrant, create_operator_grant
from creditledger.services.health import readiness
from creditledger.services.promo_codes import (
    NewPromoCodes,
    create_promo_codes,
    set_promo_code_disabled,
)
from creditledger.services.sessions import revoke_sessions
from creditledger.services.tokens import create_platform_token
from creditledger.services.verify import verify_ledger

app = typer.Typer(
    help="creditledger: credits and billing.", no_args_is_help=True, add_completion=False
)
tokens_app = typer.Typer(help="Operator and service tokens.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
jobs_app = typer.Typer(help="Periodic jobs, run once by hand.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
promo_app = typer.Typer(help="Promo codes (acts as an operator).", no_args_is_help=True)
app.add_typer(promo_app, name="promo")
grants_app = typer.Typer(help="Operator grants (acts as an operator).", no_args_is_help=True)
app.add_typer(grants_app, name="grants")
sessions_app = typer.Typer(help="Web sessions of the Billing page.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")
streams_app = typer.Typer(help="Usage intake on NATS JetStream.", no_args_is_help=True)
app.add_typer(streams_app, name="streams")


@contextmanager
def _context() -> Iterator[Context]:
    """A context for one command on a migrated database; its connections are closed after.

    A missing SQLite file is not created (connecting would leave an empty one behind):
    only ``migrate`` and ``serve`` make the database."""
    settings = Settings()
    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:
        typer.echo(f"error: no database at {missing}; run `creditledger migrate` first", err=True)
        raise typer.Exit(1)
    ctx = build_context(settings)
    try:
        problem = readiness(ctx)
        if problem is not None:
            typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(1)
        yield ctx
    finally:
        ctx.uow.dispose()


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest migration."""
    settings = Settings()
    migrate_database(settings)
    typer.echo(f"migrated {settings.database_url}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    settings = Settings()
    host, port = host or settings.host, port or settings.port
    # The app factory (run in each worker process) reads its settings again: tell it
    # where it listens, which is where the sandbox's links point without a public URL.
    os.environ["CREDITLEDGER_HOST"], os.environ["CREDITLEDGER_PORT"] = host, str(port)
    uvicorn.run(
        "creditledger.entrypoints.api.main:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@app.command()
def demo() -> None:
    """Load the demo team (idempotent) and print how to log in, with fresh tokens."""
    with _context() as ctx:
        result = load_demo(ctx)
        ctx_base = ctx.settings.public_base_url
    verb = "created" if result.created else "already there"
    typer.echo(f"demo team {result.team_id} {verb}")
    typer.echo(f"  billing: {ctx_base}/login  (then Team Settings > Billing)")
    typer.echo(f"  log in:  email {result.email}  password {result.password}")
    typer.echo(f"  token:   {result.token}")
    typer.echo(f"  service: {result.service_token}")
    typer.echo(f"  promo:   {result.promo_code}")
    typer.echo("Paste into another shell to run the README's examples:")
    typer.echo(f"export TOKEN={result.token} TEAM={result.team_id} SERVICE={result.service_token}")


@sessions_app.command("revoke")
def sessions_revoke(
    email: Annotated[str, typer.Option(help="The user whose sessions end")],
) -> None:
    """Sign a user out of every browser at once (their API tokens are not touched)."""
    with _context() as ctx:
        ended = revoke_sessions(ctx, email)
    typer.echo(f"{ended} session{'s' if ended != 1 else ''} ended")


@tokens_app.command("create")
def tokens_create(
    kind: Annotated[str, typer.Option(help="operator or service")],
    name: Annotated[str, typer.Option(help="What the token is for")],
) -> None:
    """Create an operator or service token and print it (only the token, once)."""
    if kind not in (TokenKind.OPERATOR.value, TokenKind.SERVICE.value):
        typer.echo("--kind must be operator or service", err=True)
        raise typer.Exit(2)
    with _context() as ctx:
        token = create_platform_token(ctx, TokenKind(kind), name)
    typer.echo(token)


@jobs_app.command("list")
def jobs_list() -> None:
    """The registered jobs and how often they run."""
    for job in JOBS.values():
        typer.echo(f"{job.name:24} every {job.every_seconds:g}s  {job.help}")


@jobs_app.command("run")
def jobs_run(
    name: Annotated[str, typer.Argument(help="The job's name (see `jobs list`)")],
    at: Annotated[
        datetime | None, typer.Option(help="Run as if at this time (ISO 8601, UTC)")
    ] = None,
) -> None:
    """Run one job now, once."""
    job = JOBS.get(name)
    if job is None:
        typer.echo(f"unknown job {name!r}; jobs: {', '.join(sorted(JOBS))}", err=True)
        raise typer.Exit(2)
    with _context() as ctx:
        if at is not None:
            done = job.run(
                replace(ctx, clock=FixedClock(at if at.tzinfo else at.replace(tzinfo=UTC)))
            )
        else:
            done = job.run(ctx)
    typer.echo(f"{name}: {done}")


@app.command()
def worker() -> None:
    """Run the periodic jobs in this process until interrupted (for production, with
    `serve` started with CREDITLEDGER_RUN_JOBS_IN_PROCESS=false)."""
    with _context() as ctx:
        _run_worker(JobRunner(ctx))


def _run_worker(runner: JobRunner) -> None:
    # The handler comes first: a SIGTERM right after the start must still stop cleanly.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner.start()
    typer.echo(f"worker running jobs: {', '.join(sorted(runner.jobs))}")
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    runner.stop()


@app.command()
def verify() -> None:
    """Rebuild balances from the postings and check the ledger invariants."""
    with _context() as ctx:
        problems = verify_ledger(ctx)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        typer.echo(f"{len(problems)} violation(s)", err=True)
        raise typer.Exit(1)
    typer.echo("ledger ok: I1 I2 I3 I4 I5 I6 I7 I8 I9 hold")


# Usage intake on NATS (docs/decisions/0025). nats-py is imported by these commands
# only: without CREDITLEDGER_NATS_URL nothing else touches it.


@streams_app.command("setup")
def streams_setup() -> None:
    """Create the usage stream, its rejected stream and the workers' shared consumer, or
    bring them to the settings (safe to run again); warn of what durability lacks."""
    from creditledger.adapters.streams.setup import setup_streams
    from creditledger.entrypoints.intake import intake_names, nats_url, stream_limits

    settings = Settings()
    report = setup_streams(
        nats_url(settings),
        intake_names(settings),
        stream_limits(settings),
        settings.nats_monitor_url,
    )
    typer.echo(f"nats-server {report.server_version}")
    for line in report.done:
        typer.echo(line)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)


@app.command()
def publish(
    file: Annotated[
        Path, typer.Argument(help='JSON lines, a JSON list, or {"events": [...]}; - for stdin')
    ],
) -> None:
    """Publish usage events to the stream as a gateway does (for tests and replays):
    one message per event, on `<prefix>.events.<team_id>`, `Nats-Msg-Id` `<team_id>:<id>`."""
    import sys

    from creditledger.adapters.streams.publish import publish_events
    from creditledger.entrypoints.intake import intake_names, nats_url, read_events

    settings = Settings()
    text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    events = read_events(text)
    result = publish_events(nats_url(settings), intake_names(settings), events)
    typer.echo(
        f"published {result.published} event(s), {result.duplicates} dropped by the stream "
        f"as repeats, {result.retried} publish(es) sent again"
    )


@app.command()
def consume(
    batch: Annotated[int, typer.Option(min=1, max=5000, help="Messages per transaction")] = 1000,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface of the metrics")] = "127.0.0.1",
) -> None:
    """Charge usage from the stream until SIGTERM (run as many as needed, on any
    machine: they share one durable consumer)."""
    import logging

    from creditledger.entrypoints.intake import nats_url, run_consumer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    nats_url(Settings())  # before the database: a clear word when intake is off
    with _context() as ctx:
        run_consumer(ctx, batch, metrics_port, metrics_host)


PROMO_CSV_COLUMNS = (
    "id",
    "code",
    "amount",
    "max_redemptions",
    "valid_from",
    "redeem_by",
    "credit_expires_at",
    "credit_valid_days",
)
_ScopeOption = Annotated[
    list[str] | None,
    typer.Option(help="Limit the credit to these values (repeat, or separate with commas)"),
]


@promo_app.command("create")
def promo_create(
    amount: Annotated[str, typer.Option(help="Credit per redemption in dollars, e.g. 5.00")],
    code: Annotated[str | None, typer.Option(help="The code text, e.g. WELCOME2026")] = None,
    count: Annotated[int | None, typer.Option(help="How many random codes to make")] = None,
    max_redemptions: Annotated[int, typer.Option(help="Redemptions allowed, per code")] = 1,
    valid_from: Annotated[
        str | None, typer.Option(help="ISO time before which the code is not valid")
    ] = None,
    redeem_by: Annotated[str | None, typer.Option(help="ISO time the code stops working")] = None,
    credit_expires_at: Annotated[
        str | None, typer.Option(help="ISO time the granted credit expires")
    ] = None,
    credit_valid_days: Annotated[
        int | None, typer.Option(help="Or: the credit expires this many days after redemption")
    ] = None,
    scope_products: _ScopeOption = None,
    scope_models: _ScopeOption = None,
    scope_gpus: _ScopeOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the codes to this new CSV file (readable by you only)"),
    ] = None,
) -> None:
    """Create one code (--code) or a batch of random codes (--count N).

    Times are ISO 8601; without a zone they are UTC. Without --out the codes are printed.
    """
    new = NewPromoCodes(
        amount=amount,
        max_redemptions=max_redemptions,
        scope=_cli_scope(scope_products, scope_models, scope_gpus),
        valid_from=_cli_time(valid_from, "--valid-from"),
        redeem_by=_cli_time(redeem_by, "--redeem-by"),
        credit_expires_at=_cli_time(credit_expires_at, "--credit-expires-at"),
        credit_valid_days=credit_valid_days,
        code=code,
        count=count,
    )
    if out is None:
        with _context() as ctx:
            codes = create_promo_codes(ctx, system_operator("cli"), new)
        for promo in codes:
            typer.echo(promo.display_code)
        return
    try:
        # Made before the codes, and never over an existing file: a batch is not lost.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        typer.echo(f"{out} already exists; choose another --out file", err=True)
        raise typer.Exit(2) from None
    try:
        with _context() as ctx:
            codes = create_promo_codes(ctx, system_operator("cli"), new)
    except BaseException:
        os.close(fd)
        out.unlink()
        raise
    with open(fd, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PROMO_CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(_promo_csv_row(promo) for promo in codes)
    typer.echo(f"{len(codes)} code(s) written to {out}")


@promo_app.command("disable")
def promo_disable(promo_id: Annotated[str, typer.Argument(help="The code's id (promo_…)")]) -> None:
    """Disable a code: redemptions stop at once."""
    with _context() as ctx:
        promo = set_promo_code_disabled(ctx, system_operator("cli"), promo_id, True)
    typer.echo(f"{promo.id} disabled ({promo.redemptions} of {promo.max_redemptions} redeemed)")


@promo_app.command("enable")
def promo_enable(promo_id: Annotated[str, typer.Argument(help="The code's id (promo_…)")]) -> None:
    """Enable a disabled code again."""
    with _context() as ctx:
        promo = set_promo_code_disabled(ctx, system_operator("cli"), promo_id, False)
    typer.echo(f"{promo.id} enabled ({promo.redemptions} of {promo.max_redemptions} redeemed)")


@grants_app.command("create")
def grants_create(
    team: Annotated[str, typer.Option(help="The team's id (team_…)")],
    amount: Annotated[str, typer.Option(help="Promotional credit in dollars, e.g. 25.00")],
    note: Annotated[str, typer.Option(help="Why the credit is granted (kept with it)")],
    effective_at: Annotated[
        str | None, typer.Option(help="ISO time the credit starts (default: now)")
    ] = None,
    expires_at: Annotated[str | None, typer.Option(help="ISO time the credit expires")] = None,
    scope_products: _ScopeOption = None,
    scope_models: _ScopeOption = None,
    scope_gpus: _ScopeOption = None,
) -> None:
    """Grant a team promotional credit, as an operator does through the API (the same
    limits: at most CREDITLEDGER_OPERATOR_GRANT_MAX at once, a note is required)."""
    asked = OperatorGrant(
        amount=amount,
        note=note,
        scope=_cli_scope(scope_products, scope_models, scope_gpus),
        effective_at=_cli_time(effective_at, "--effective-at"),
        expires_at=_cli_time(expires_at, "--expires-at"),
    )
    with _context() as ctx:
        grant = create_operator_grant(ctx, system_operator("cli"), team, asked)
    typer.echo(f"{grant.id} granted {format_amount(grant.amount)} dollars to {grant.team_id}")


def _cli_scope(
    products: list[str] | None, models: list[str] | None, gpus: list[str] | None
) -> Scope | None:
    raw = {
        name: [v.strip() for item in values for v in item.split(",") if v.strip()]
        for name, values in (("products", products), ("models", models), ("gpus", gpus))
        if values
    }
    return Scope.parse(raw or None)


def _cli_time(text: str | None, param: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"{param} must be an ISO 8601 time such as 2026-12-31T00:00:00Z.", param=param
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _promo_csv_row(promo: PromoCode) -> dict[str, object]:
    def iso(value: datetime | None) -> str:
        return "" if value is None else value.isoformat().replace("+00:00", "Z")

    return {
        "id": promo.id,
        "code": promo.display_code,
        "amount": format_amount(promo.amount),
        "max_redemptions": promo.max_redemptions,
        "valid_from": iso(promo.valid_from),
        "redeem_by": iso(promo.redeem_by),
        "credit_expires_at": iso(promo.credit_expires_at),
        "credit_valid_days": promo.credit_valid_days or "",
    }


def main() -> None:
    try:
        app(prog_name="creditledger")
    except CreditLedgerError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
