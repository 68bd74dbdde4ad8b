"""team change notices: one per statement, not one per team

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

A usage batch moves the revision of every team it charges in one ``UPDATE``. The row
trigger of 0010 sent one notice per team, so a batch of 1,000 teams sent 1,000, and each
listening process handled them one by one. The statement trigger below sends
``teams:<id> <id> …``, 150 ids to a notice (a payload holds at most 8,000 bytes; an id
at most 40 characters), for the teams whose revision moved. The listener hands each id
on as before (``adapters/db/changes.py``). PostgreSQL only, as 0010.

The moved teams are found with ``EXCEPT`` (a hash or a sort), not a join of the two
transition tables: PL/pgSQL keeps a plan per session, and a plan made for the one-row
updates of a purchase would join 1,000 rows by a nested loop, 170 ms a batch.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

CHANNEL = "creditledger_changes"
IDS_PER_NOTICE = 150


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER teams_changed ON teams")
    op.execute("DROP FUNCTION creditledger_team_changed()")
    op.execute(
        f"""
        CREATE FUNCTION creditledger_teams_changed() RETURNS trigger AS $$
        BEGIN
          PERFORM pg_notify('{CHANNEL}', 'teams:' || string_agg(id, ' '))
          FROM (
            SELECT id, (row_number() OVER (ORDER BY id) - 1) / {IDS_PER_NOTICE} AS part
            FROM (SELECT id, revision FROM changed EXCEPT SELECT id, revision FROM before) m
          ) moved
          GROUP BY part;
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """  # noqa: S608 - constants only
    )
    op.execute(
        "CREATE TRIGGER teams_changed AFTER UPDATE ON teams "
        "REFERENCING OLD TABLE AS before NEW TABLE AS changed "
        "FOR EACH STATEMENT EXECUTE FUNCTION creditledger_teams_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER teams_changed ON teams")
    op.execute("DROP FUNCTION creditledger_teams_changed()")
    op.execute(
        f"""
        CREATE FUNCTION creditledger_team_changed() RETURNS trigger AS $$
        BEGIN
          PERFORM pg_notify('{CHANNEL}', 'team:' || NEW.id);
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER teams_changed AFTER UPDATE ON teams FOR EACH ROW "
        "WHEN (OLD.revision IS DISTINCT FROM NEW.revision) "
        "EXECUTE FUNCTION creditledger_team_changed()"
    )
