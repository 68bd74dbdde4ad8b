"""teams and grants keep room on each page for their rows' next versions

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

Every charge updates its teams' balances and the grants it draws from. With pages
filled to the brim, PostgreSQL often could not put a row's new version beside the old
one: the update went to another page and added an entry to every index of the table,
and a table whose every row is updated by each batch grew to dozens of times its live
size between autovacuum runs, which the updates' own scans then read through. With
pages filled to half (``fillfactor`` 50, as ``tables.ROOM_FOR_UPDATES`` declares), each
update stays on its page (a HOT update, no index entry) and the page prunes the old
version itself. docs/decisions/0039.

The setting applies to pages written from now on: rows already stored move to
half-filled pages as they are next updated. PostgreSQL only: SQLite writes in place.
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = ("teams", "grants")
FILLFACTOR = 50


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
