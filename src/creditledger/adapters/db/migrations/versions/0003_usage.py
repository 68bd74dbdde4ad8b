"""usage metering: prices, team pricing, usage events

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-24

Times are BIGINT microseconds since the epoch (UTC); money is BIGINT nano-dollars.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "price_books",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("effective_from", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_books")),
    )
    op.create_table(
        "prices",
        sa.Column("book_id", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("gpu", sa.String(length=128), nullable=True),
        sa.Column("meter", sa.String(length=64), nullable=False),
        sa.Column("unit_price_nanos", sa.BigInteger(), nullable=False),
        sa.Column("per_units", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "model IS NOT NULL OR gpu IS NOT NULL", name=op.f("ck_prices_has_subject")
        ),
        sa.CheckConstraint("per_units > 0", name=op.f("ck_prices_per_units_positive")),
        sa.CheckConstraint("unit_price_nanos >= 0", name=op.f("ck_prices_unit_price_nonnegative")),
        sa.ForeignKeyConstraint(
            ["book_id"], ["price_books.id"], name=op.f("fk_prices_book_id_price_books")
        ),
    )
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.create_index("ix_prices_book_id", ["book_id"], unique=False)

    op.create_table(
        "team_pricing",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("effective_from", sa.BigInteger(), nullable=False),
        sa.Column("discount_bp", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "prices", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "discount_bp BETWEEN 0 AND 10000", name=op.f("ck_team_pricing_discount_range")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_team_pricing_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_pricing")),
    )
    with op.batch_alter_table("team_pricing", schema=None) as batch_op:
        batch_op.create_index("ix_team_pricing_team_id", ["team_id"], unique=False)

    op.create_table(
        "usage_events",
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("gpu", sa.String(length=128), nullable=True),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("charge_nanos", sa.BigInteger(), nullable=False),
        sa.Column("uncovered_nanos", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.String(length=40), nullable=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("draws", sa.Text(), nullable=True),
        sa.CheckConstraint("charge_nanos >= 0", name=op.f("ck_usage_events_charge_nonnegative")),
        sa.CheckConstraint(
            "uncovered_nanos BETWEEN 0 AND charge_nanos",
            name=op.f("ck_usage_events_uncovered_within_charge"),
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_usage_events_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("team_id", "event_id", name=op.f("pk_usage_events")),
    )
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_events_team_id_occurred_at",
            ["team_id", "occurred_at", "event_id"],
            unique=False,
        )

    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("revision")

    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_team_id_occurred_at")

    op.drop_table("usage_events")
    with op.batch_alter_table("team_pricing", schema=None) as batch_op:
        batch_op.drop_index("ix_team_pricing_team_id")

    op.drop_table("team_pricing")
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.drop_index("ix_prices_book_id")

    op.drop_table("prices")
    op.drop_table("price_books")
