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

from creditledger.adapters.db.key_checks import KEYS, added_rows_check

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in dict.fromkeys(t for t, _, _ in KEYS):
        op.execute(added_rows_check(table, " OFFSET 0", "CREATE OR REPLACE"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in dict.fromkeys(t for t, _, _ in KEYS):
        op.execute(added_rows_check(table, "", "CREATE OR REPLACE"))
