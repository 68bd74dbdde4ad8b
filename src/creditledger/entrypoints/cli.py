"""The ``creditledger`` command."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

import typer

from creditledger.adapters.clock import FixedClock
from creditledger.bootstrap import build_context, migrate_database
from creditledger.config import Settings
from creditledger.domain.accounts import TokenKind
from creditledger.domain.errors import CreditLedgerError
from creditledger.entrypoints.jobs import JOBS, JobRunner
from creditledger.services.context import Context
from creditledger.services.demo import load_demo
from creditledger.services.health import readiness
from creditledger.services.tokens import create_platform_token
from creditledger.services.verify import verify_ledger

app = typer.Typer(
    help="creditledger: credits and billing.", no_args_is_help=True, add_completion=False
)
tokens_app = typer.Typer(help="Operator and service tokens.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
jobs_app = typer.Typer(help="Periodic jobs, run once by hand.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@contextmanager
def _context() -> Iterator[Context]:
    """A context for one command on a migrated database; its connections are closed after."""
    ctx = build_context()
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
    uvicorn.run(
        "creditledger.entrypoints.api.main:app_factory",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level="info",
    )


@app.command()
def demo() -> None:
    """Load the demo team (idempotent) and print how to log in."""
    with _context() as ctx:
        result = load_demo(ctx)
    verb = "created" if result.created else "already there"
    typer.echo(f"demo team {result.team_id} {verb}")
    typer.echo(f"  log in:  email {result.email}  password {result.password}")
    typer.echo(f"  token:   {result.token}")


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
    typer.echo("ledger ok: I1 I2 I3 I6 I9 hold")


def main() -> None:
    try:
        app(prog_name="creditledger")
    except CreditLedgerError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
