"""ledger and usage key checks search the index once per added row

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

The statement triggers of 0013 check the rows a statement added with an anti-join
against the referred table. PL/pgSQL keeps one plan per statement for the whole session,
and a plan made while ``ledger_transactions`` was small joined by scanning all of it:
each single-event charge then read the whole table, and a check that took 0.37 ms took
1.05 ms after 12,000 more transactions. Here each check runs its subquery once per added
row (``OFFSET 0`` keeps PostgreSQL from turning it into a join), so every added row
costs one search of the referred table's primary key, however large that table grows:
about 2 to 3 ms for the 3,000 keys of a 1,000-event batch, as the join took.
PostgreSQL only, as 0013.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

KEYS = (
    ("usage_events", "team_id", "teams"),
    ("ledger_transactions", "team_id", "teams"),
    ("postings", "transaction_id", "ledger_transactions"),
    ("postings", "grant_id", "grants"),
)
"""(table, column, referred table), as in 0013."""


def _added_rows_check(table: str, fence: str) -> str:
    """0013's statement trigger function of ``table``, its subqueries ending in ``fence``."""
    checks = "\n".join(
        f"""
          IF EXISTS (SELECT 1 FROM added a WHERE a.{column} IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM {referred} r
                                     WHERE r.id = a.{column}{fence})) THEN
            RAISE EXCEPTION 'insert into {table} refers to a missing {referred} row'
              USING ERRCODE = 'foreign_key_violation', TABLE = '{table}',
                    CONSTRAINT = 'fk_{table}_{column}_{referred}';
          END IF;"""  # noqa: S608 - constants only
        for t, column, referred in KEYS
        if t == table
    )
    return f"""
        CREATE OR REPLACE FUNCTION creditledger_{table}_keys() RETURNS trigger AS $$
        BEGIN{checks}
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in dict.fromkeys(t for t, _, _ in KEYS):
        op.execute(_added_rows_check(table, " OFFSET 0"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in dict.fromkeys(t for t, _, _ in KEYS):
        op.execute(_added_rows_check(table, ""))
