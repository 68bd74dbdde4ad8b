"""Promo code storage: the constraints hold whatever the code does, and `verify` (I5)
finds a redemption ledger that was changed behind the service's back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables as t
from creditledger.adapters.db.engine import create_engine
from creditledger.bootstrap import build_context
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.money import dollars
from creditledger.domain.promo_codes import PromoCode
from creditledger.entrypoints.cli import app
from creditledger.services import accounts
from creditledger.services.access import system_operator
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.promo_codes import (
    NewPromoCodes,
    create_promo_codes,
    redeem_promo_code,
)
from creditledger.services.tokens import authenticate
from creditledger.services.verify import verify_ledger
from tests.conftest import START, make_settings
from tests.helpers import PASSWORD

OPERATOR = system_operator("test")


@dataclass
class Redeemed:
    ctx: Context
    code: PromoCode
    team_id: str


@pytest.fixture
def redeemed(database_url: str) -> Iterator[Redeemed]:
    """A code of $2.00 (limit 3) redeemed by one team; the test may break the ledger."""
    ctx = build_context(make_settings(database_url), clock=FixedClock(START))
    done = accounts.sign_up(ctx, "ada@example.com", PASSWORD, "Ada's team")
    new = NewPromoCodes(amount="2.00", max_redemptions=3, code="SPRING")
    (code,) = create_promo_codes(ctx, OPERATOR, new)
    redeem_promo_code(ctx, authenticate(ctx, done.token), done.team.id, "spring")
    yield Redeemed(ctx, code, done.team.id)
    ctx.uow.dispose()


@pytest.fixture
def raw(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def i5(ctx: Context) -> list[str]:
    return [p for p in verify_ledger(ctx) if p.startswith("I5:")]


def test_verify_is_clean_after_redemptions(redeemed: Redeemed, database_url: str) -> None:
    assert verify_ledger(redeemed.ctx) == []
    result = CliRunner().invoke(app, ["verify"], env={"CREDITLEDGER_DATABASE_URL": database_url})
    assert result.exit_code == 0
    assert "I5" in result.output


def test_the_database_refuses_more_redemptions_than_allowed(
    redeemed: Redeemed, raw: sa.Engine
) -> None:
    with pytest.raises(sa.exc.IntegrityError), raw.begin() as conn:
        conn.execute(t.promo_codes.update().values(redemptions_count=4))


def test_the_database_refuses_a_second_redemption_by_one_team(
    redeemed: Redeemed, raw: sa.Engine
) -> None:
    with raw.connect() as conn:
        row = conn.execute(sa.select(t.promo_redemptions)).one()._asdict()
    with pytest.raises(sa.exc.IntegrityError), raw.begin() as conn:
        conn.execute(t.promo_redemptions.insert().values(row | {"id": "redeem_2"}))


def test_the_database_refuses_a_code_text_twice(redeemed: Redeemed, raw: sa.Engine) -> None:
    with raw.connect() as conn:
        row = conn.execute(sa.select(t.promo_codes)).one()._asdict()
    with pytest.raises(sa.exc.IntegrityError), raw.begin() as conn:
        conn.execute(t.promo_codes.insert().values(row | {"id": "promo_2"}))


def test_verify_finds_a_count_that_disagrees_with_the_redemptions(
    redeemed: Redeemed, raw: sa.Engine
) -> None:
    with raw.begin() as conn:
        conn.execute(t.promo_codes.update().values(redemptions_count=2))
    assert i5(redeemed.ctx) == [
        f"I5: promo code {redeemed.code.id} counts 2 redemptions, 1 recorded"
    ]


def test_verify_finds_a_promo_grant_without_a_redemption(
    redeemed: Redeemed, raw: sa.Engine
) -> None:
    ctx = redeemed.ctx
    with ctx.uow() as uow:
        new = NewGrant(GrantKind.PROMOTIONAL, GrantSource.PROMO_CODE, dollars("2.00"))
        stray = issue_grant(uow, ctx, redeemed.team_id, new, "Promo code SPRING")
        uow.commit()
    assert i5(ctx) == [f"I5: promo grant {stray.id} does not match a redemption of its team"]


def test_verify_finds_a_redemption_whose_grant_is_not_the_codes_amount(
    redeemed: Redeemed, raw: sa.Engine
) -> None:
    with raw.begin() as conn:
        conn.execute(t.promo_codes.update().values(amount_nanos=dollars("3.00")))
    assert i5(redeemed.ctx) == [
        f"I5: promo code {redeemed.code.id} granted {dollars('2.00')}, not 1 × {dollars('3.00')}"
    ]
