"""`creditledger verify` finds a planted violation and is clean otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables as t
from creditledger.adapters.db.engine import create_engine
from creditledger.bootstrap import build_context
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.ledger import USAGE_REVENUE
from creditledger.domain.money import dollars
from creditledger.entrypoints.cli import app
from creditledger.services import accounts
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.prices import PriceInput, set_price_book
from creditledger.services.usage import ingest_usage
from creditledger.services.verify import verify_ledger
from tests.conftest import START, make_settings
from tests.helpers import PASSWORD, event, remaining_by_grant


@pytest.fixture
def unchecked_ctx(database_url: str) -> Iterator[Context]:
    """A context whose ledger the test breaks on purpose (no invariant check after)."""
    context = build_context(make_settings(database_url), clock=FixedClock(START))
    accounts.sign_up(context, "ada@example.com", PASSWORD, "Ada's team")
    yield context
    context.uow.dispose()


@pytest.fixture
def raw(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def run_verify(database_url: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify"], env={"CREDITLEDGER_DATABASE_URL": database_url})
    return result.exit_code, result.output


def test_verify_is_clean_on_a_sound_ledger(unchecked_ctx: Context, database_url: str) -> None:
    assert verify_ledger(unchecked_ctx) == []
    code, output = run_verify(database_url)
    assert code == 0
    assert output.strip().startswith("ledger ok")


def test_verify_finds_a_grant_balance_changed_behind_the_ledger(
    unchecked_ctx: Context, raw: sa.Engine, database_url: str
) -> None:
    with raw.begin() as conn:
        conn.execute(t.grants.update().values(remaining_nanos=t.grants.c.remaining_nanos - 1))
    problems = verify_ledger(unchecked_ctx)
    assert any(p.startswith("I2:") and "remaining" in p for p in problems)
    assert any(p.startswith("I3:") and "credit" in p for p in problems)

    code, output = run_verify(database_url)
    assert code == 1
    assert "I2:" in output
    assert "violation(s)" in output

    with raw.begin() as conn:
        conn.execute(t.grants.update().values(remaining_nanos=t.grants.c.remaining_nanos + 1))
    assert verify_ledger(unchecked_ctx) == []


def test_verify_finds_a_team_cache_out_of_step(unchecked_ctx: Context, raw: sa.Engine) -> None:
    with raw.begin() as conn:
        conn.execute(t.teams.update().values(unpaid_nanos=5))
    assert any(p.startswith("I3:") and "unpaid" in p for p in verify_ledger(unchecked_ctx))


def test_verify_finds_an_unbalanced_transaction(unchecked_ctx: Context, raw: sa.Engine) -> None:
    with raw.begin() as conn:
        tx_id = conn.execute(sa.select(t.ledger_transactions.c.id)).scalar_one()
        conn.execute(
            t.postings.insert().values(
                transaction_id=tx_id, account="platform:promotional_expense", amount_nanos=-1
            )
        )
    assert any(p.startswith("I1:") and tx_id in p for p in verify_ledger(unchecked_ctx))


def test_verify_finds_a_grant_without_its_issuing_entry(
    unchecked_ctx: Context, raw: sa.Engine
) -> None:
    with raw.begin() as conn:
        team_id = conn.execute(sa.select(t.teams.c.id)).scalar_one()
        conn.execute(
            t.grants.insert().values(
                id="grant_unfunded",
                team_id=team_id,
                kind="promotional",
                source="manual",
                amount_nanos=100,
                remaining_nanos=100,
                is_scoped=False,
                effective_at=START,
                created_at=START,
            )
        )
    problems = verify_ledger(unchecked_ctx)
    assert any(p.startswith("I2: grant grant_unfunded") for p in problems)


def _charge_usage(ctx: Context, team_id: str, expiring_in: timedelta) -> tuple[str, str]:
    """$1.00 of usage on a team holding its $5.00 sign-up credit and $2.00 that expires
    sooner (so drawn first); returns the ids of (the expiring grant, the sign-up grant)."""
    operator = Principal(TokenKind.OPERATOR, "tok_test_operator")
    set_price_book(ctx, operator, [PriceInput("serverless", "llama", None, "requests", "0.01", 1)])
    with ctx.uow(write=False) as uow:
        (signup,) = uow.grants.for_team(team_id)
    expiring = NewGrant(
        kind=GrantKind.PROMOTIONAL,
        source=GrantSource.MANUAL,
        amount=dollars("2.00"),
        expires_at=START + expiring_in,
    )
    with ctx.uow() as uow:
        uow.teams.lock(team_id)
        soon = issue_grant(uow, ctx, team_id, expiring, "Grant")
        uow.commit()
    service = Principal(TokenKind.SERVICE, "tok_test_gateway")
    result = ingest_usage(ctx, service, [event(team_id, "ev-1", START, requests=100)])
    assert result.accepted == 1
    assert remaining_by_grant(ctx, team_id)[soon.id] == dollars("1.00")
    return soon.id, signup.id


def test_verify_finds_a_usage_charge_that_does_not_match_its_postings(
    unchecked_ctx: Context, raw: sa.Engine, database_url: str
) -> None:
    team_id = _team_of(raw)
    _charge_usage(unchecked_ctx, team_id, timedelta(days=1))
    assert verify_ledger(unchecked_ctx) == []
    with raw.begin() as conn:
        conn.execute(t.usage_events.update().values(charge_nanos=t.usage_events.c.charge_nanos + 1))
    problems = verify_ledger(unchecked_ctx)
    assert any(p.startswith("I4: event ev-1 charge") for p in problems), problems
    code, output = run_verify(database_url)
    assert code == 1
    assert "I4: event ev-1" in output


def test_verify_finds_usage_the_ledger_charged_twice(
    unchecked_ctx: Context, raw: sa.Engine
) -> None:
    team_id = _team_of(raw)
    _charge_usage(unchecked_ctx, team_id, timedelta(days=1))
    with raw.begin() as conn:
        first = conn.execute(sa.select(t.usage_events)).one()._asdict()
        conn.execute(t.usage_events.insert().values(first | {"event_id": "ev-2"}))
    problems = verify_ledger(unchecked_ctx)
    assert any(p.startswith("I4: transaction") and "several events" in p for p in problems)


def test_verify_finds_usage_that_skipped_an_earlier_ordered_grant(
    unchecked_ctx: Context, raw: sa.Engine, database_url: str
) -> None:
    team_id = _team_of(raw)
    _, signup = _charge_usage(unchecked_ctx, team_id, timedelta(days=1))
    assert verify_ledger(unchecked_ctx) == []
    # Make the grant the usage did not draw the one ordered first: the usage then
    # skipped an eligible grant that still had credit.
    with raw.begin() as conn:
        conn.execute(
            t.grants.update()
            .where(t.grants.c.id == signup)
            .values(expires_at=START + timedelta(hours=12))
        )
    problems = verify_ledger(unchecked_ctx)
    assert any(p.startswith("I7:") and signup in p for p in problems), problems
    assert not any(p.startswith(("I1:", "I2:", "I3:", "I4:")) for p in problems)
    code, output = run_verify(database_url)
    assert code == 1
    assert "I7:" in output


def _team_of(raw: sa.Engine) -> str:
    with raw.connect() as conn:
        team_id: str = conn.execute(sa.select(t.teams.c.id)).scalar_one()
    return team_id


def test_verify_replays_a_transaction_whole_when_its_postings_interleave_with_another(
    unchecked_ctx: Context, raw: sa.Engine
) -> None:
    """On PostgreSQL, transactions committing at once take ``seq`` values turn about, so
    one usage charge's postings may sit on both sides of another's: the order check
    replays each transaction whole, and a sound ledger stays clean."""
    team_id = _team_of(raw)
    _charge_usage(unchecked_ctx, team_id, timedelta(days=1))
    service = Principal(TokenKind.SERVICE, "tok_test_gateway")
    assert ingest_usage(unchecked_ctx, service, [event(team_id, "ev-2", START, requests=10)])
    with raw.begin() as conn:
        first_charge = conn.execute(
            sa.select(t.usage_events.c.transaction_id).where(t.usage_events.c.event_id == "ev-1")
        ).scalar_one()
        for amount in (1, -1):
            conn.execute(
                t.postings.insert().values(
                    transaction_id=first_charge, account=USAGE_REVENUE, amount_nanos=amount
                )
            )
    assert verify_ledger(unchecked_ctx) == []
