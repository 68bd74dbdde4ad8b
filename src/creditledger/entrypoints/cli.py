"""The ``creditledger`` command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from creditledger.bootstrap import build_context, migrate_database
from creditledger.config import Settings
from creditledger.domain.accounts import TokenKind
from creditledger.domain.errors import CreditLedgerError
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
    typer.echo("ledger ok: I1 I2 I3 I9 hold")


def main() -> None:
    try:
        app(prog_name="creditledger")
    except CreditLedgerError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
