"""The SQL of the keys that PostgreSQL checks once per statement, by trigger
(migrations 0013 and 0014, docs/decisions/0031 and 0034).

Migrations run this text: change it only together with a migration that applies the
change, as 0014 did (``fence``).
"""

from __future__ import annotations

KEYS = (
    ("usage_events", "team_id", "teams"),
    ("ledger_transactions", "team_id", "teams"),
    ("postings", "transaction_id", "ledger_transactions"),
    ("postings", "grant_id", "grants"),
)
"""(table, column, referred table): each refers to the referred table's ``id``."""


def constraint(table: str, column: str, referred: str) -> str:
    """The name a violation reports, the foreign key's on SQLite."""
    return f"fk_{table}_{column}_{referred}"


def added_rows_check(table: str, fence: str = "", create: str = "CREATE") -> str:
    """The statement trigger function of ``table``: every key of the rows it added.
    ``fence`` ends each subquery: ``" OFFSET 0"`` keeps it a search per added row
    (0014) instead of a join whose kept plan may scan the referred table."""
    return _function(
        create,
        f"creditledger_{table}_keys",
        [
            _refuse(
                f"EXISTS (SELECT 1 FROM added a WHERE a.{column} IS NOT NULL "  # noqa: S608
                f"AND NOT EXISTS (SELECT 1 FROM {referred} r WHERE r.id = a.{column}{fence}))",
                f"'insert into {table} refers to a missing {referred} row'",
                (table, column, referred),
            )
            for t, column, referred in KEYS
            if t == table
        ],
    )


def referred_check(referred: str) -> str:
    """The row trigger function of ``referred``: no row may lose what refers to it."""
    return _function(
        "CREATE",
        f"creditledger_{referred}_referred",
        [
            _refuse(
                f"EXISTS (SELECT 1 FROM {table} c WHERE c.{column} = OLD.id)",  # noqa: S608
                f"'{referred} row % is still referred to by {table}', OLD.id",
                (table, column, referred),
            )
            for table, column, r in KEYS
            if r == referred
        ],
    )


def _function(create: str, name: str, checks: list[str]) -> str:
    body = "\n".join(checks)
    return f"""
        {create} FUNCTION {name}() RETURNS trigger AS $$
        BEGIN{body}
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """


def _refuse(condition: str, message: str, key: tuple[str, str, str]) -> str:
    """A check that raises the foreign key violation of ``key`` when ``condition``."""
    return f"""
          IF {condition} THEN
            RAISE EXCEPTION {message}
              USING ERRCODE = 'foreign_key_violation', TABLE = '{key[0]}',
                    CONSTRAINT = '{constraint(*key)}';
          END IF;"""
