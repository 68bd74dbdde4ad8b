"""a few charges' writes as one call of a function

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

A group of single-event POSTs wrote its rows as a dozen statements in one pipeline: the
usage records, one update per team, the ledger transactions, their postings, one update
per grant. ``creditledger_write_charges`` takes each table's rows as a JSON array and
runs the same writes in the same order (``adapters/db/charge_writes.py``,
docs/decisions/0037). PostgreSQL only: SQLite runs its statements in process.
"""

from __future__ import annotations

from alembic import op

from creditledger.adapters.db.charge_writes import DROP, create_function

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(create_function())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(DROP)
