"""Migrations run up to head, down to base and up again on both backends."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.db.invariants import SqlInvariants
from creditledger.adapters.db.migrate import SqlSchemaStatus, downgrade, is_current, upgrade
from creditledger.adapters.db.tables import PER_STATEMENT_KEYS, metadata

TABLES = {t.name for t in metadata.sorted_tables}


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_migrations_go_up_down_and_up_again(scratch_database_url: str) -> None:
    engine = create_engine(scratch_database_url)
    try:
        assert SqlSchemaStatus(engine).problem() is not None

        upgrade(engine)
        assert table_names(engine) == TABLES
        assert is_current(engine)
        assert list(SqlInvariants(engine).violations()) == []

        downgrade(engine, "base")
        assert table_names(engine) == set()
        assert not is_current(engine)

        upgrade(engine)
        assert table_names(engine) == TABLES
        assert SqlSchemaStatus(engine).problem() is None
        assert list(SqlInvariants(engine).violations()) == []
    finally:
        engine.dispose()


def test_the_migrated_schema_matches_the_tables_the_code_uses(scratch_database_url: str) -> None:
    engine = create_engine(scratch_database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        if engine.dialect.name == "postgresql":
            diffs = [d for d in diffs if not _checked_per_statement(d)]
        assert diffs == []
    finally:
        engine.dispose()


def _checked_per_statement(diff: object) -> bool:
    """A key the tables declare that PostgreSQL checks by trigger (migration 0013)."""
    if not (isinstance(diff, tuple) and diff[0] == "add_fk"):
        return False
    fk = diff[1]
    assert isinstance(fk, sa.ForeignKeyConstraint)
    assert fk.referred_table is not None
    key = (fk.table.name, *fk.column_keys, fk.referred_table.name)
    return key in PER_STATEMENT_KEYS


def test_the_migrated_storage_settings_are_the_tables_settings(pg_database: str) -> None:
    """Each table's PostgreSQL storage parameters (``postgresql_with``) are what the
    migrations set: the tables every charge updates keep room for their rows' next
    versions (migration 0016). SQLite has no such settings."""
    engine = create_engine(pg_database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT relname, reloptions FROM pg_class "
                    "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                )
            )
            stored: dict[str, list[str] | None] = dict(rows.all())
        declared = {
            t.name: [f"{k}={v}" for k, v in t.dialect_options["postgresql"]["with"].items()]
            for t in metadata.sorted_tables
            if t.dialect_options["postgresql"]["with"]
        }
        assert declared == {"teams": ["fillfactor=50"], "grants": ["fillfactor=50"]}
        assert {name: opts for name, opts in stored.items() if opts} == declared
    finally:
        engine.dispose()
