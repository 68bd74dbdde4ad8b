"""a few charges' reads and writes as one call each

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

A group of single-event POSTs read what it charges with five statements in a pipeline
and wrote its rows with a dozen more: the usage records, one update per team, the
ledger transactions, their postings, one update per grant.
``creditledger_read_for_usage`` runs the same reads and answers their rows as one JSON
document (``adapters/db/charge_reads.py``); ``creditledger_write_charges`` takes each
table's rows as a JSON array and runs the same writes in the same order
(``adapters/db/charge_writes.py``). docs/decisions/0037. PostgreSQL only: SQLite runs
its statements in process.
"""

from __future__ import annotations

from alembic import op

from creditledger.adapters.db import charge_reads, charge_writes

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(charge_reads.create_function())
    op.execute(charge_writes.create_function())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(charge_writes.DROP)
    op.execute(charge_reads.DROP)
