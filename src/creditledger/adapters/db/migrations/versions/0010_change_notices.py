"""change notices: PostgreSQL tells listening processes what changed

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

On PostgreSQL, a committed change of a team's ``revision`` (every write that can change
an authorization decision bumps it) sends ``NOTIFY creditledger_changes, 'team:<id>'``,
a new price book sends ``'prices'``, and a token revoked or deleted ``'tokens'``. Notices are delivered at commit, to every
process that listens (``adapters/db/changes.py``). SQLite has no such thing: processes
there read the revision per decision, as before.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CHANNEL = "creditledger_changes"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
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
    op.execute(
        f"""
        CREATE FUNCTION creditledger_prices_changed() RETURNS trigger AS $$
        BEGIN
          PERFORM pg_notify('{CHANNEL}', 'prices');
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER price_books_changed AFTER INSERT ON price_books "
        "FOR EACH STATEMENT EXECUTE FUNCTION creditledger_prices_changed()"
    )
    op.execute(
        f"""
        CREATE FUNCTION creditledger_tokens_changed() RETURNS trigger AS $$
        BEGIN
          PERFORM pg_notify('{CHANNEL}', 'tokens');
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER api_tokens_changed AFTER UPDATE OR DELETE ON api_tokens "
        "FOR EACH STATEMENT EXECUTE FUNCTION creditledger_tokens_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER api_tokens_changed ON api_tokens")
    op.execute("DROP FUNCTION creditledger_tokens_changed()")
    op.execute("DROP TRIGGER price_books_changed ON price_books")
    op.execute("DROP FUNCTION creditledger_prices_changed()")
    op.execute("DROP TRIGGER teams_changed ON teams")
    op.execute("DROP FUNCTION creditledger_team_changed()")
