"""The command line against a temporary SQLite file: migrate, demo, tokens, verify."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from creditledger.bootstrap import build_context
from creditledger.config import Settings
from creditledger.domain.accounts import TokenKind
from creditledger.domain.errors import NotFound
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.invoices import next_period, period_of
from creditledger.domain.money import dollars
from creditledger.entrypoints.api.app import create_app
from creditledger.entrypoints.cli import app
from creditledger.services.promo_codes import redeem_promo_code
from creditledger.services.sessions import sign_in
from creditledger.services.tokens import authenticate
from tests.helpers import Platform, event, price


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "CREDITLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CREDITLEDGER_PASSWORD_TIME_COST": "1",
        "CREDITLEDGER_PASSWORD_MEMORY_KIB": "8",
    }


@pytest.fixture
def cli(env: dict[str, str]) -> CliRunner:
    return CliRunner(env=env)


def run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def principal_kind(env: dict[str, str], token: str) -> TokenKind:
    ctx = build_context(Settings(database_url=env["CREDITLEDGER_DATABASE_URL"]))
    try:
        return authenticate(ctx, token).kind
    finally:
        ctx.uow.dispose()


def test_migrate_brings_an_empty_file_to_the_newest_schema(
    cli: CliRunner, env: dict[str, str]
) -> None:
    assert run(cli, "migrate").startswith("migrated sqlite:///")
    assert run(cli, "migrate").startswith("migrated")  # again: nothing to do, still fine
    ctx = build_context(Settings(database_url=env["CREDITLEDGER_DATABASE_URL"]))
    try:
        assert ctx.schema.problem() is None
    finally:
        ctx.uow.dispose()


def test_demo_creates_the_demo_team_once(cli: CliRunner, env: dict[str, str]) -> None:
    run(cli, "migrate")
    first = run(cli, "demo")
    second = run(cli, "demo")
    assert "created" in first.splitlines()[0]
    assert "already there" in second.splitlines()[0]
    assert first.split()[2] == second.split()[2]  # the same team id
    assert "demo@creditledger.local" in first
    token = next(line.split()[-1] for line in second.splitlines() if "token:" in line)
    assert principal_kind(env, token) is TokenKind.PERSONAL


def test_verify_passes_on_the_demo_data(cli: CliRunner) -> None:
    run(cli, "migrate")
    run(cli, "demo")
    assert run(cli, "verify").strip().startswith("ledger ok")


@pytest.mark.parametrize("kind", [TokenKind.OPERATOR, TokenKind.SERVICE])
def test_tokens_create_prints_only_the_token(
    cli: CliRunner, env: dict[str, str], kind: TokenKind
) -> None:
    run(cli, "migrate")
    output = run(cli, "tokens", "create", "--kind", kind.value, "--name", "ci")
    token = output.strip()
    assert output == token + "\n"
    assert " " not in token
    assert len(token) >= 40
    assert principal_kind(env, token) is kind


def test_tokens_create_refuses_personal_tokens(cli: CliRunner) -> None:
    run(cli, "migrate")
    result = cli.invoke(app, ["tokens", "create", "--kind", "personal", "--name", "x"])
    assert result.exit_code == 2
    assert "operator or service" in result.output


@pytest.mark.parametrize(
    "args", [["verify"], ["demo"], ["tokens", "create", "--kind", "service", "--name", "x"]]
)
def test_commands_on_an_unmigrated_database_say_to_migrate(cli: CliRunner, args: list[str]) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == 1
    assert "creditledger migrate" in result.output
    assert "Traceback" not in result.output


def test_the_installed_command_runs_as_a_program(env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "creditledger.entrypoints.cli"]
    environment = os.environ | env
    migrated = subprocess.run(
        [*command, "migrate"], env=environment, capture_output=True, text=True, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    bad = subprocess.run(
        [*command, "tokens", "create", "--kind", "operator", "--name", ""],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (bad.returncode, bad.stderr.strip()) == (1, "error: `name` must be 1 to 200 characters.")


def test_demo_ends_with_an_export_line_of_working_tokens(
    cli: CliRunner, env: dict[str, str]
) -> None:
    run(cli, "migrate")
    output = run(cli, "demo")
    export = output.splitlines()[-1]
    assert export.startswith("export ")
    values = dict(item.split("=", 1) for item in export.removeprefix("export ").split())
    assert sorted(values) == ["SERVICE", "TEAM", "TOKEN"]
    assert values["TEAM"] == output.split()[2]
    assert principal_kind(env, values["TOKEN"]) is TokenKind.PERSONAL
    assert principal_kind(env, values["SERVICE"]) is TokenKind.SERVICE


def test_demo_has_a_promo_code_its_team_can_redeem_even_after_a_second_load(
    cli: CliRunner, env: dict[str, str]
) -> None:
    run(cli, "migrate")
    run(cli, "demo")
    output = run(cli, "demo")
    assert "promo:   WELCOME-DEMO" in output
    values = dict(
        item.split("=", 1) for item in output.splitlines()[-1].removeprefix("export ").split()
    )
    ctx = build_context(Settings(database_url=env["CREDITLEDGER_DATABASE_URL"]))
    try:
        admin = authenticate(ctx, values["TOKEN"])
        grant = redeem_promo_code(ctx, admin, values["TEAM"], "welcome demo")
        assert (grant.kind, grant.source, grant.amount) == (
            GrantKind.PROMOTIONAL,
            GrantSource.PROMO_CODE,
            dollars("5.00"),
        )
    finally:
        ctx.uow.dispose()
    run(cli, "demo")  # a third load keeps the code and its redemption
    assert run(cli, "verify").startswith("ledger ok")


@pytest.mark.parametrize(
    "args",
    [
        ["verify"],
        ["demo"],
        ["jobs", "run", "expire"],
        ["tokens", "create", "--kind", "service", "--name", "x"],
        ["promo", "disable", "promo_00000000000000000000000000000000"],
        ["worker"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_commands_outside_a_deployment_create_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """With the default URL (``./creditledger.db``) in a directory without one, a command
    says where it looked and stops, instead of leaving an empty file behind."""
    monkeypatch.chdir(tmp_path)
    cli = CliRunner(env={"CREDITLEDGER_DATABASE_URL": None})

    result = cli.invoke(app, args)

    assert result.exit_code == 1
    assert (
        f"no database at {tmp_path / 'creditledger.db'}; run `creditledger migrate` first"
        in result.output
    )
    assert list(tmp_path.iterdir()) == []


def test_listing_the_jobs_needs_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    output = run(CliRunner(env={"CREDITLEDGER_DATABASE_URL": None}), "jobs", "list")

    assert "expire" in output
    assert list(tmp_path.iterdir()) == []


def test_migrate_creates_the_database_where_the_url_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = CliRunner(env={"CREDITLEDGER_DATABASE_URL": None})

    run(cli, "migrate")

    assert [p.name for p in tmp_path.iterdir()] == ["creditledger.db"]
    assert run(cli, "verify").strip().startswith("ledger ok")


def test_jobs_run_invoices_at_a_time_opens_that_months_invoices(
    cli: CliRunner, env: dict[str, str]
) -> None:
    run(cli, "migrate")
    ctx = build_context(Settings(database_url=env["CREDITLEDGER_DATABASE_URL"]))
    try:
        with TestClient(create_app(ctx)) as client:
            platform = Platform.on(client, ctx)
            platform.put_prices(price("llama", "input_tokens", "1.00", 1_000_000))
            team = platform.team()
            now = datetime.now(UTC)
            platform.usage(event(team.team_id, "cli-1", now, input_tokens=2_000_000))
    finally:
        ctx.uow.dispose()
    after = next_period(period_of(now)).start + timedelta(hours=2)

    assert run(cli, "jobs", "run", "invoices", "--at", after.isoformat()).strip() == "invoices: 1"
    assert run(cli, "jobs", "run", "invoices", "--at", after.isoformat()).strip() == "invoices: 0"
    assert run(cli, "verify").strip() == "ledger ok: I1 I2 I3 I4 I5 I6 I7 I8 I9 hold"


def test_sessions_revoke_signs_the_demo_admin_out_everywhere(
    cli: CliRunner, env: dict[str, str]
) -> None:
    run(cli, "migrate")
    shown = run(cli, "demo")
    assert "billing: http://127.0.0.1:8000/login" in shown
    ctx = build_context(Settings(database_url=env["CREDITLEDGER_DATABASE_URL"]))
    try:
        for _ in range(2):
            sign_in(ctx, "demo@creditledger.local", "demo-password-123")
    finally:
        ctx.uow.dispose()
    assert run(cli, "sessions", "revoke", "--email", "demo@creditledger.local") == (
        "2 sessions ended\n"
    )
    assert run(cli, "sessions", "revoke", "--email", "demo@creditledger.local") == (
        "0 sessions ended\n"
    )
    unknown = cli.invoke(app, ["sessions", "revoke", "--email", "nobody@example.com"])
    assert unknown.exit_code != 0
    assert isinstance(unknown.exception, NotFound)  # `main` prints it as `error: …`
