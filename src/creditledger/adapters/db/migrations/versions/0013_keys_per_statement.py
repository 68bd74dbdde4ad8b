"""ledger and usage keys: PostgreSQL checks them once per statement

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

PostgreSQL checks a foreign key with a trigger per inserted row: for a batch of 1,000
usage events, 1,000 probes for the usage rows' teams, 1,000 for the transactions' teams,
and 3,000 for the postings' transactions and grants, each through its own query. That was
56 of the 130 ms the database spent on such a batch (docs/decisions/0031). On PostgreSQL
these four keys become statement triggers that check all the rows a statement added with
one anti-join each:

- ``usage_events.team_id`` → ``teams``;
- ``ledger_transactions.team_id`` → ``teams``;
- ``postings.transaction_id`` → ``ledger_transactions``;
- ``postings.grant_id`` → ``grants``.

The other side of each key is kept too: a team or a grant that such a row refers to can
not be deleted or change its id, and a usage row can not move to a team that does not
exist (the ledger tables take no updates at all). A violation raises SQLSTATE 23503
(``foreign_key_violation``), as the keys did. SQLite keeps its foreign keys: it checks
them cheaply, row by row.
"""

from __future__ import annotations

from alembic import op

from creditledger.adapters.db.key_checks import KEYS, added_rows_check, constraint, referred_check

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, referred in KEYS:
        op.drop_constraint(constraint(table, column, referred), table, type_="foreignkey")
    for table in dict.fromkeys(t for t, _, _ in KEYS):
        op.execute(added_rows_check(table))
        op.execute(
            f"CREATE TRIGGER {table}_keys AFTER INSERT ON {table} "
            "REFERENCING NEW TABLE AS added "
            f"FOR EACH STATEMENT EXECUTE FUNCTION creditledger_{table}_keys()"
        )
    for referred in dict.fromkeys(r for _, _, r in KEYS):
        op.execute(referred_check(referred))
        op.execute(
            f"CREATE TRIGGER {referred}_referred AFTER DELETE ON {referred} "
            f"FOR EACH ROW EXECUTE FUNCTION creditledger_{referred}_referred()"
        )
        op.execute(
            f"CREATE TRIGGER {referred}_renamed AFTER UPDATE OF id ON {referred} "
            "FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) "
            f"EXECUTE FUNCTION creditledger_{referred}_referred()"
        )
    # A usage row that moved to another team would escape the insert check.
    op.execute(
        """
        CREATE FUNCTION creditledger_usage_events_team() RETURNS trigger AS $$
        BEGIN
          IF NOT EXISTS (SELECT 1 FROM teams r WHERE r.id = NEW.team_id) THEN
            RAISE EXCEPTION 'usage_events.team_id refers to a missing teams row'
              USING ERRCODE = 'foreign_key_violation', TABLE = 'usage_events',
                    CONSTRAINT = 'fk_usage_events_team_id_teams';
          END IF;
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER usage_events_team AFTER UPDATE OF team_id ON usage_events "
        "FOR EACH ROW EXECUTE FUNCTION creditledger_usage_events_team()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER usage_events_team ON usage_events")
    op.execute("DROP FUNCTION creditledger_usage_events_team()")
    for referred in dict.fromkeys(r for _, _, r in KEYS):
        op.execute(f"DROP TRIGGER {referred}_referred ON {referred}")
        op.execute(f"DROP TRIGGER {referred}_renamed ON {referred}")
        op.execute(f"DROP FUNCTION creditledger_{referred}_referred()")
    for table in dict.fromkeys(t for t, _, _ in KEYS):
        op.execute(f"DROP TRIGGER {table}_keys ON {table}")
        op.execute(f"DROP FUNCTION creditledger_{table}_keys()")
    for table, column, referred in KEYS:
        op.create_foreign_key(
            constraint(table, column, referred), table, referred, [column], ["id"]
        )
