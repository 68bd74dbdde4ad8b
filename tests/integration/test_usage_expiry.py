"""Late usage and expiry: usage is charged against the grants valid at its own
time, so credit expiring at midnight pays for 23:59 usage that arrives at 00:10; the
expiry write-off waits for the late-arrival window (1 hour by default), and once the
window has closed late usage no longer draws the expired credit."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from creditledger.adapters.clock import FixedClock
from creditledger.bootstrap import build_context
from creditledger.entrypoints.cli import app as cli
from creditledger.entrypoints.jobs import JOBS, JobRunner
from creditledger.services.accounts import sign_up
from creditledger.services.context import Context
from creditledger.services.expiry import expire_credits
from tests.conftest import START, make_settings
from tests.helpers import Platform, at, bearer, event, nanos, price, usage_violations

MIDNIGHT = at("2026-11-25T00:00")
BEFORE_MIDNIGHT = MIDNIGHT - timedelta(minutes=1)


def _team_with_credit_expiring_at_midnight(
    platform: Platform, clock: FixedClock
) -> tuple[str, str, str]:
    """A team with $1.00 expiring at midnight and $1.00 that never expires."""
    platform.put_prices(price("llama", "requests", "0.01"))
    tid = platform.team().team_id
    expiring = platform.promo(tid, "1.00", expires_at=MIDNIGHT)
    lasting = platform.promo(tid, "1.00")
    return tid, expiring, lasting


def _history(client: TestClient, platform: Platform, tid: str, kind: str) -> list[dict[str, str]]:
    response = client.get(
        f"/v1/teams/{tid}/credit-history", params={"type": kind}, headers=bearer(platform.operator)
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, str]] = response.json()["data"]
    return data


def test_credit_expiring_at_midnight_pays_for_2359_usage_arriving_at_0010(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    tid, expiring, lasting = _team_with_credit_expiring_at_midnight(platform, clock)
    clock.at = MIDNIGHT + timedelta(minutes=10)

    platform.usage(
        event(tid, "2359", BEFORE_MIDNIGHT, requests=30),
        event(tid, "0001", MIDNIGHT + timedelta(minutes=1), requests=20),
    )

    assert platform.remaining(tid) == {expiring: nanos("0.70"), lasting: nanos("0.80")}
    assert expire_credits(ctx) == 0  # still inside the window
    assert usage_violations(ctx.settings.database_url) == []


def test_the_write_off_waits_for_the_window_and_later_late_usage_draws_the_next_grant(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    tid, expiring, lasting = _team_with_credit_expiring_at_midnight(platform, clock)
    clock.at = MIDNIGHT + timedelta(minutes=10)
    platform.usage(event(tid, "early", BEFORE_MIDNIGHT, requests=30))

    clock.at = MIDNIGHT + timedelta(minutes=59)
    assert expire_credits(ctx) == 0
    clock.at = MIDNIGHT + timedelta(hours=1)
    assert expire_credits(ctx) == 1

    assert platform.remaining(tid) == {expiring: 0, lasting: nanos("1.00")}
    [expiry] = _history(client, platform, tid, "expiry")
    assert (expiry["grant_id"], expiry["amount"]) == (expiring, "-0.70")
    assert expiry["occurred_at"] == "2026-11-25T00:00:00Z"

    clock.advance(timedelta(minutes=5))
    platform.usage(event(tid, "late", BEFORE_MIDNIGHT, requests=10))

    assert platform.remaining(tid) == {expiring: 0, lasting: nanos("0.90")}
    assert usage_violations(ctx.settings.database_url) == []


def test_once_the_window_has_closed_late_usage_skips_the_expired_credit_even_before_the_job(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    tid, expiring, lasting = _team_with_credit_expiring_at_midnight(platform, clock)
    clock.at = MIDNIGHT + timedelta(hours=1)

    platform.usage(event(tid, "late", BEFORE_MIDNIGHT, requests=10))

    assert platform.remaining(tid) == {expiring: nanos("1.00"), lasting: nanos("0.90")}
    assert expire_credits(ctx) == 1
    assert platform.remaining(tid) == {expiring: 0, lasting: nanos("0.90")}
    assert usage_violations(ctx.settings.database_url) == []


def test_the_expiry_job_run_twice_writes_off_once(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    tid, expiring, lasting = _team_with_credit_expiring_at_midnight(platform, clock)
    clock.at = MIDNIGHT + timedelta(hours=2)

    assert expire_credits(ctx) == 1
    assert platform.remaining(tid) == {expiring: 0, lasting: nanos("1.00")}
    assert expire_credits(ctx) == 0

    assert len(_history(client, platform, tid, "expiry")) == 1


def test_two_expiry_jobs_at_once_write_off_once(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    """Both jobs find the same due grants, then race for each team's lock; the loser
    re-reads the grant under the lock and finds nothing left to write off."""
    platform = Platform.on(client, ctx)
    teams = [_team_with_credit_expiring_at_midnight(platform, clock)[0] for _ in range(3)]
    clock.at = MIDNIGHT + timedelta(hours=2)
    barrier = threading.Barrier(2)
    done: list[int] = []

    def run() -> None:
        barrier.wait()
        done.append(expire_credits(ctx))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(done) == 3
    assert [len(_history(client, platform, tid, "expiry")) for tid in teams] == [1, 1, 1]


def test_a_window_of_zero_writes_off_at_the_expiry_itself(
    database_url: str, clock: FixedClock
) -> None:
    context = build_context(make_settings(database_url, late_arrival_window_seconds=0), clock=clock)
    try:
        signup = sign_up(context, "ada@example.com", "correct horse battery", "Ada")
        clock.at = START + timedelta(days=30) - timedelta(microseconds=1)
        assert expire_credits(context) == 0
        clock.advance(timedelta(microseconds=1))
        assert expire_credits(context) == 1
        with context.uow(write=False) as uow:
            assert [g.remaining for g in uow.grants.for_team(signup.team.id)] == [0]
        assert list(context.invariants.violations()) == []
    finally:
        context.uow.dispose()


def test_the_expire_command_writes_off_after_the_window_once(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    context = build_context(make_settings(url), clock=FixedClock(START))
    signup = sign_up(context, "ada@example.com", "correct horse battery", "Ada")
    context.uow.dispose()
    runner = CliRunner()
    env = {"CREDITLEDGER_DATABASE_URL": url}
    # The sign-up credit expires 30 days after sign-up, at 2026-12-24T12:00Z.

    inside = runner.invoke(cli, ["jobs", "run", "expire", "--at", "2026-12-24T12:59:59"], env=env)
    after = runner.invoke(cli, ["jobs", "run", "expire", "--at", "2026-12-24T13:00:00"], env=env)
    again = runner.invoke(cli, ["jobs", "run", "expire", "--at", "2026-12-24T14:00:00"], env=env)
    verify = runner.invoke(cli, ["verify"], env=env)

    assert (inside.exit_code, inside.output) == (0, "expire: 0\n")
    assert (after.exit_code, after.output) == (0, "expire: 1\n")
    assert (again.exit_code, again.output) == (0, "expire: 0\n")
    assert verify.exit_code == 0, verify.output
    context = build_context(make_settings(url))
    with context.uow(write=False) as uow:
        assert [g.remaining for g in uow.grants.for_team(signup.team.id)] == [0]
    context.uow.dispose()


def test_the_job_runner_writes_off_on_its_timer(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    tid, expiring, _ = _team_with_credit_expiring_at_midnight(platform, clock)
    clock.at = MIDNIGHT + timedelta(hours=1)
    runner = JobRunner(ctx, {"expire": replace(JOBS["expire"], every_seconds=0.01)})

    runner.start()
    try:
        deadline = time.monotonic() + 10
        while platform.remaining(tid)[expiring] and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        runner.stop()

    assert platform.remaining(tid)[expiring] == 0
    assert len(_history(client, platform, tid, "expiry")) == 1


def test_an_unknown_job_is_refused_with_the_list_of_jobs(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)

    result = CliRunner().invoke(
        cli, ["jobs", "run", "expier"], env={"CREDITLEDGER_DATABASE_URL": f"sqlite:///{path}"}
    )

    assert result.exit_code == 2
    assert "unknown job 'expier'" in result.output
    assert "expire" in result.output.split("jobs: ")[1].strip().split(", ")
