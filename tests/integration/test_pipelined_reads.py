"""The reads that travel together in one pipeline on PostgreSQL (``read_for_usage``,
``read_teams``) answer what the same reads made one by one answer, on both backends."""

from __future__ import annotations

from fastapi.testclient import TestClient

from creditledger.adapters.db.uow import SqlUnitOfWork
from creditledger.services.context import Context
from tests.helpers import Platform, event, price

MISSING = "team_missing"


def _platform_with_usage(client: TestClient, ctx: Context) -> tuple[Platform, list[str]]:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    teams = [platform.team().team_id for _ in range(3)]
    platform.promo(teams[0], "1.00")
    platform.promo(teams[1], "2.50")
    platform.usage(event(teams[0], "e1", ctx.clock.now(), requests=3))
    return platform, teams


def test_read_teams_answers_as_the_reads_one_by_one(client: TestClient, ctx: Context) -> None:
    _, teams = _platform_with_usage(client, ctx)
    asked = [*teams, MISSING]
    with ctx.uow(write=False) as uow:
        reads = uow.read_teams(asked)

        assert reads.teams == {team_id: uow.teams.get(team_id) for team_id in teams}
        assert reads.grants == uow.grants.for_teams(asked)
        assert reads.grants[MISSING] == []
        assert reads.pricing == uow.pricing.for_teams(asked)
        assert reads.price_version == uow.teams.revisions_with_price_version(asked)[1]
        assert reads.price_version
        assert uow.read_teams([MISSING]).price_version is None


def test_read_for_usage_answers_as_the_reads_one_by_one(client: TestClient, ctx: Context) -> None:
    _, teams = _platform_with_usage(client, ctx)
    keys = [(teams[0], "e1"), (teams[0], "e2"), (teams[1], "e1"), (MISSING, "e1")]
    with ctx.uow() as uow:
        reads = uow.read_for_usage(keys)

        asked = [team_id for team_id, _ in keys]
        assert reads.locks == uow.teams.lock_for_usage(asked)
        assert reads.locks.credit == {t: uow.teams.credit_balance(t) for t in teams[:2]}
        assert reads.fingerprints == uow.usage.fingerprints(keys)
        assert set(reads.fingerprints) == {(teams[0], "e1")}
        assert reads.grants == uow.grants.for_teams(sorted(set(asked)))
        assert reads.pricing == uow.pricing.for_teams(asked)


def _plan_mode(uow: object) -> str | None:
    assert isinstance(uow, SqlUnitOfWork)
    if uow.conn.dialect.name != "postgresql":
        return None
    return str(uow.conn.exec_driver_sql("SELECT current_setting('plan_cache_mode')").scalar())


def test_few_rows_reuse_their_plans_for_that_transaction_only(
    client: TestClient, ctx: Context
) -> None:
    """A few events' reads and writes run on plans made once (``bulk.reuse_plans``);
    many events' keep PostgreSQL's choice, and the pooled connection goes back as it
    was, after a commit or a rollback."""
    _, teams = _platform_with_usage(client, ctx)
    with ctx.uow() as uow:
        before = _plan_mode(uow)
        uow.read_for_usage([(teams[0], "e9")])
        assert _plan_mode(uow) == (before and "force_generic_plan")
        uow.commit()
        assert _plan_mode(uow) == before
        uow.read_for_usage([(teams[0], f"m{n}") for n in range(100)])
        assert _plan_mode(uow) == before
    with ctx.uow() as uow:
        uow.read_for_usage([(teams[1], "e9")])
        assert _plan_mode(uow) == (before and "force_generic_plan")
    with ctx.uow() as uow:  # the last one rolled back
        assert _plan_mode(uow) == before
    assert before in (None, "auto")
