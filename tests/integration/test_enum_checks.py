"""Every domain enum stored in a column allows, in the database, exactly its own values.

A CHECK (column IN (…)) constraint holds each such column to a list of words written
a second time, in ``tables.py`` and in the migrations. These tests tie each list to its
enum: a member added to the enum without a migration, or a word left in the
constraint after a member was removed, fails here rather than at the first insert.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.db.tables import metadata
from creditledger.domain.accounts import BillingMode, Role, TokenKind
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.invoices import AttemptOutcome, InvoiceStatus
from creditledger.domain.ledger import EntryType
from creditledger.domain.notices import NoticeState
from creditledger.domain.payments import CheckoutState, PaymentPurpose, PaymentStatus, Refusal
from creditledger.domain.recharge import RechargeStatus


def values(members: type[enum.StrEnum] | frozenset[enum.StrEnum]) -> frozenset[str]:
    return frozenset(str(member) for member in members)


ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("teams", "billing_mode"): values(BillingMode),
    ("memberships", "role"): values(Role),
    ("api_tokens", "kind"): values(TokenKind),
    ("grants", "kind"): values(GrantKind),
    ("grants", "source"): values(GrantSource),
    ("ledger_transactions", "type"): values(EntryType),
    ("purchases", "status"): values(PaymentStatus),
    ("recharges", "status"): values(RechargeStatus),
    ("payments", "purpose"): values(PaymentPurpose),
    # A payments row is a payment we granted: only a paid state is ever stored there.
    ("payments", "status"): values(frozenset(s for s in PaymentStatus if s.is_paid)),
    ("payment_reviews", "reason"): values(Refusal),
    ("sandbox_sessions", "status"): values(CheckoutState),
    ("invoices", "status"): values(InvoiceStatus),
    ("invoice_attempts", "outcome"): values(AttemptOutcome),
    ("notifications", "state"): values(NoticeState),
}
"""(table, column) → the values its CHECK allows, as the domain defines them."""

_IN_CHECK = re.compile(r"\A\s*\(?\s*(?P<column>\w+) IN \((?P<words>[^)]*)\)\s*\)?\s*\Z")
_WORD = re.compile(r"'([^']*)'")


def in_checks_in_tables_py() -> dict[tuple[str, str], tuple[str, frozenset[str]]]:
    """(table, column) → (constraint name, allowed words) of every ``IN`` CHECK."""
    found: dict[tuple[str, str], tuple[str, frozenset[str]]] = {}
    for table in metadata.sorted_tables:
        for constraint in table.constraints:
            if not isinstance(constraint, sa.CheckConstraint):
                continue
            match = _IN_CHECK.match(str(constraint.sqltext))
            if match is None:
                continue
            words = frozenset(_WORD.findall(match.group("words")))
            found[(table.name, match.group("column"))] = (str(constraint.name), words)
    return found


def test_every_in_check_of_the_schema_is_tied_to_an_enum() -> None:
    assert set(in_checks_in_tables_py()) == set(ALLOWED)


@pytest.mark.parametrize(("table", "column"), sorted(ALLOWED))
def test_the_tables_check_allows_exactly_the_enums_values(table: str, column: str) -> None:
    _, words = in_checks_in_tables_py()[(table, column)]
    assert words == ALLOWED[(table, column)]


def test_the_migrated_checks_allow_exactly_the_enums_values(database_url: str) -> None:
    """The migrations, not only ``tables.py``: read the constraints back from a migrated
    database on each backend (PostgreSQL rewrites ``IN`` as ``= ANY (ARRAY[…])``, whose
    quoted words are the same)."""
    names = {key: name for key, (name, _) in in_checks_in_tables_py().items()}
    engine = create_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        migrated: dict[tuple[str, str], frozenset[str]] = {}
        for (table, column), name in names.items():
            checks = {c["name"]: c["sqltext"] for c in inspector.get_check_constraints(table)}
            assert name in checks, f"{table} has no constraint {name} after migrating"
            migrated[(table, column)] = frozenset(_WORD.findall(checks[name]))
    finally:
        engine.dispose()
    assert migrated == ALLOWED


def test_the_database_refuses_a_value_outside_the_enum(database_url: str) -> None:
    """The words read back are enforced: a team with an unknown billing mode is refused."""
    engine = create_engine(database_url)
    teams = metadata.tables["teams"]
    row = {
        "id": "team_enum_check",
        "name": "Enum check",
        "created_at": datetime(2026, 11, 24, tzinfo=UTC),
    }
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(teams.insert().values(**row, billing_mode="invoiced"))
        for mode in BillingMode:
            with engine.begin() as conn:
                conn.execute(teams.insert().values(**row, billing_mode=str(mode)))
                conn.execute(teams.delete().where(teams.c.id == row["id"]))
    finally:
        engine.dispose()
