"""The database itself refuses rows that break the rules, whatever the code does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.engine import create_engine
from creditledger.domain.accounts import TokenKind
from creditledger.services import accounts
from creditledger.services.context import Context
from creditledger.services.tokens import hash_token
from tests.conftest import START
from tests.helpers import PASSWORD


@dataclass(frozen=True)
class Seeded:
    engine: sa.Engine
    team_id: str
    user_id: str
    grant_id: str


@pytest.fixture
def seeded(ctx: Context, database_url: str) -> Iterator[Seeded]:
    """A signed-up team with its sign-up grant, and a raw engine on the same database."""
    done = accounts.sign_up(ctx, "ada@example.com", PASSWORD, "Ada's team")
    engine = create_engine(database_url)
    with engine.connect() as conn:
        grant_id = conn.execute(sa.select(t.grants.c.id)).scalar_one()
    yield Seeded(engine, done.team.id, done.user_id, grant_id)
    engine.dispose()


def refused(engine: sa.Engine, statement: Any, params: dict[str, Any] | None = None) -> str:
    """Run ``statement`` in a transaction that is rolled back; return the error text."""
    with engine.connect() as conn:
        conn.begin()
        with pytest.raises(sa.exc.DBAPIError) as caught:
            conn.execute(statement, params or {})
        conn.rollback()
    return str(caught.value.orig)


def grant_row(s: Seeded, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "grant_constraint",
        "team_id": s.team_id,
        "kind": "promotional",
        "source": "manual",
        "amount_nanos": 100,
        "remaining_nanos": 0,
        "scope": None,
        "is_scoped": False,
        "effective_at": START,
        "expires_at": None,
        "voided_at": None,
        "created_at": START,
    }
    return row | overrides


def update_grant(s: Seeded, **values: Any) -> Any:
    return t.grants.update().where(t.grants.c.id == s.grant_id).values(**values)


def test_a_grant_remaining_below_zero_is_refused(seeded: Seeded) -> None:
    refused(seeded.engine, update_grant(seeded, remaining_nanos=-1))


def test_a_grant_remaining_above_its_amount_is_refused(seeded: Seeded) -> None:
    refused(seeded.engine, update_grant(seeded, remaining_nanos=t.grants.c.amount_nanos + 1))


@pytest.mark.parametrize("amount", [0, -100])
def test_a_grant_amount_of_zero_or_less_is_refused(seeded: Seeded, amount: int) -> None:
    refused(seeded.engine, t.grants.insert().values(**grant_row(seeded, amount_nanos=amount)))


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"kind": "gift"}, id="bad-kind"),
        pytest.param({"source": "lottery"}, id="bad-source"),
        pytest.param(
            {"kind": "prepaid", "source": "purchase", "is_scoped": True}, id="scoped-prepaid"
        ),
        pytest.param(
            {"kind": "prepaid", "source": "purchase", "expires_at": START + timedelta(days=1)},
            id="expiring-prepaid",
        ),
        pytest.param({"expires_at": START}, id="expiry-not-after-effective"),
        pytest.param({"team_id": "team_missing"}, id="unknown-team"),
    ],
)
def test_a_grant_row_breaking_a_rule_is_refused(seeded: Seeded, overrides: dict[str, Any]) -> None:
    refused(seeded.engine, t.grants.insert().values(**grant_row(seeded, **overrides)))


def test_a_team_credit_balance_below_zero_is_refused(seeded: Seeded) -> None:
    refused(seeded.engine, t.teams.update().values(credit_nanos=-1))


def test_a_duplicate_email_is_refused(seeded: Seeded) -> None:
    refused(
        seeded.engine,
        t.users.insert().values(
            id="user_dup", email="ada@example.com", password_hash="x", created_at=START
        ),
    )


def test_a_duplicate_token_hash_is_refused(seeded: Seeded) -> None:
    row = {
        "token_hash": hash_token("clo_same"),
        "kind": TokenKind.OPERATOR.value,
        "user_id": None,
        "name": "op",
        "created_at": START,
    }
    with seeded.engine.begin() as conn:
        conn.execute(t.api_tokens.insert().values(id="tok_first", **row))
    refused(seeded.engine, t.api_tokens.insert().values(id="tok_second", **row))


def test_a_personal_token_without_a_user_is_refused(seeded: Seeded) -> None:
    refused(
        seeded.engine,
        t.api_tokens.insert().values(
            id="tok_x",
            token_hash="h" * 64,
            kind="personal",
            user_id=None,
            name="x",
            created_at=START,
        ),
    )


def test_a_duplicate_idempotency_key_of_one_caller_is_refused(seeded: Seeded) -> None:
    row = {
        "principal_id": "tok_op",
        "key": "k-1",
        "request_hash": "a" * 64,
        "created_at": START,
        "expires_at": START + timedelta(days=1),
    }
    with seeded.engine.begin() as conn:
        conn.execute(t.idempotency_keys.insert().values(**row))
        conn.execute(t.idempotency_keys.insert().values(**(row | {"principal_id": "tok_other"})))
    refused(seeded.engine, t.idempotency_keys.insert().values(**(row | {"request_hash": "b" * 64})))


def test_a_second_membership_of_the_same_user_is_refused(seeded: Seeded) -> None:
    refused(
        seeded.engine,
        t.memberships.insert().values(
            team_id=seeded.team_id, user_id=seeded.user_id, role="member", created_at=START
        ),
    )


def test_an_unknown_role_is_refused(seeded: Seeded) -> None:
    refused(
        seeded.engine,
        t.memberships.update()
        .where(t.memberships.c.user_id == seeded.user_id)
        .values(role="owner"),
    )


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(lambda: t.postings.update().values(amount_nanos=0), id="update-postings"),
        pytest.param(t.postings.delete, id="delete-postings"),
        pytest.param(
            lambda: t.ledger_transactions.update().values(description="rewritten"),
            id="update-transactions",
        ),
        pytest.param(t.ledger_transactions.delete, id="delete-transactions"),
    ],
)
def test_the_ledger_is_append_only(seeded: Seeded, statement: Any) -> None:
    assert "append-only" in refused(seeded.engine, statement())


def test_a_team_side_posting_without_its_balance_is_refused(seeded: Seeded) -> None:
    with seeded.engine.connect() as conn:
        tx_id = conn.execute(sa.select(t.ledger_transactions.c.id)).scalar_one()
    refused(
        seeded.engine,
        t.postings.insert().values(
            transaction_id=tx_id,
            account=f"grant:{seeded.grant_id}",
            amount_nanos=0,
            team_id=seeded.team_id,
            grant_id=seeded.grant_id,
            balance_after_nanos=None,
        ),
    )


def test_a_ledger_transaction_of_an_unknown_type_is_refused(seeded: Seeded) -> None:
    refused(
        seeded.engine,
        t.ledger_transactions.insert().values(
            id="txn_x",
            team_id=seeded.team_id,
            type="gift",
            occurred_at=START,
            created_at=START,
            description="x",
        ),
    )
