"""invoices: the table, their attempts, the number sequence, what usage each billed

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

``invoices`` holds every invoice from the moment it opens (a draft is read from the
usage no invoice has billed yet, and stored only if it is voided). ``invoice_sequence``
gives numbers with no gaps: the opening transaction increments it. ``usage_events``
learns which invoice billed each event, and the meter and quantity of an event with
one meter. A provider payment may now pay an invoice; a sandbox checkout names what it
pays for by purpose and reference.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ONE_REFERENCE_BEFORE = "(purchase_id IS NULL) <> (recharge_id IS NULL)"
ONE_REFERENCE = (
    "(CASE WHEN purchase_id IS NULL THEN 0 ELSE 1 END) + "
    "(CASE WHEN recharge_id IS NULL THEN 0 ELSE 1 END) + "
    "(CASE WHEN invoice_id IS NULL THEN 0 ELSE 1 END) = 1"
)


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("period_end", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("number", sa.String(length=20), nullable=True),
        sa.Column("lines", JsonDoc, nullable=False),
        sa.Column("promotional_applied_nanos", sa.BigInteger(), nullable=False),
        sa.Column("prepaid_applied_nanos", sa.BigInteger(), nullable=False),
        sa.Column("subtotal_nanos", sa.BigInteger(), nullable=False),
        sa.Column("total_nanos", sa.BigInteger(), nullable=False),
        sa.Column("exact_nanos", sa.BigInteger(), nullable=False),
        sa.Column("carry_nanos", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=True),
        sa.Column("paid_at", sa.BigInteger(), nullable=True),
        sa.Column("voided_at", sa.BigInteger(), nullable=True),
        sa.Column("void_note", sa.Text(), nullable=True),
        sa.Column("next_charge_at", sa.BigInteger(), nullable=True),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'open', 'paid', 'uncollectible', 'void')",
            name=op.f("ck_invoices_status"),
        ),
        sa.CheckConstraint(
            "(sequence IS NULL) = (number IS NULL)", name=op.f("ck_invoices_number_with_sequence")
        ),
        sa.CheckConstraint("total_nanos >= 0", name=op.f("ck_invoices_total_nonnegative")),
        sa.CheckConstraint(
            "total_nanos % 10000000 = 0", name=op.f("ck_invoices_total_whole_cents")
        ),
        sa.CheckConstraint(
            "exact_nanos = total_nanos + carry_nanos",
            name=op.f("ck_invoices_exact_is_total_and_carry"),
        ),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_invoices_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
        sa.UniqueConstraint("sequence", name=op.f("uq_invoices_sequence")),
        sa.UniqueConstraint(
            "team_id", "period_start", name=op.f("uq_invoices_team_id_period_start")
        ),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invoices_team_id_period_start", ["team_id", "period_start"], unique=False
        )
        batch_op.create_index(
            "ix_invoices_next_charge_at",
            ["next_charge_at"],
            unique=False,
            sqlite_where=sa.text("next_charge_at IS NOT NULL"),
            postgresql_where=sa.text("next_charge_at IS NOT NULL"),
        )

    op.create_table(
        "invoice_attempts",
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("provider_payment_id", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('pending', 'succeeded', 'failed')",
            name=op.f("ck_invoice_attempts_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_attempts_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("invoice_id", "number", name=op.f("pk_invoice_attempts")),
    )

    sequence = op.create_table(
        "invoice_sequence",
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_invoice_sequence")),
    )
    op.bulk_insert(sequence, [{"name": "invoices", "last_value": 0}])

    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unit", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("quantity", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("invoice_id", sa.String(length=40), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_usage_events_unit_with_quantity"), "(unit IS NULL) = (quantity IS NULL)"
        )
        batch_op.create_index(
            "ix_usage_events_open_unpaid",
            ["team_id", "occurred_at"],
            unique=False,
            sqlite_where=sa.text("invoice_id IS NULL AND uncovered_nanos > 0"),
            postgresql_where=sa.text("invoice_id IS NULL AND uncovered_nanos > 0"),
        )
        batch_op.create_index(
            "ix_usage_events_invoice_id",
            ["invoice_id"],
            unique=False,
            sqlite_where=sa.text("invoice_id IS NOT NULL"),
            postgresql_where=sa.text("invoice_id IS NOT NULL"),
        )

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invoice_id", sa.String(length=40), nullable=True))
        batch_op.create_unique_constraint(op.f("uq_payments_invoice_id"), ["invoice_id"])
        batch_op.create_foreign_key(
            op.f("fk_payments_invoice_id_invoices"), "invoices", ["invoice_id"], ["id"]
        )
        batch_op.drop_constraint(op.f("ck_payments_purpose"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_payments_purpose"), "purpose IN ('purchase', 'auto_recharge', 'invoice')"
        )
        batch_op.drop_constraint(op.f("ck_payments_one_reference"), type_="check")
        batch_op.create_check_constraint(op.f("ck_payments_one_reference"), ONE_REFERENCE)

    with op.batch_alter_table("sandbox_sessions", schema=None) as batch_op:
        batch_op.alter_column(
            "purchase_id", new_column_name="reference", existing_type=sa.String(length=64)
        )
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=16), nullable=False, server_default="purchase")
        )


def downgrade() -> None:
    with op.batch_alter_table("sandbox_sessions", schema=None) as batch_op:
        batch_op.drop_column("purpose")
        batch_op.alter_column(
            "reference", new_column_name="purchase_id", existing_type=sa.String(length=64)
        )
    op.execute("DELETE FROM payments WHERE invoice_id IS NOT NULL")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_payments_one_reference"), type_="check")
        batch_op.create_check_constraint(op.f("ck_payments_one_reference"), ONE_REFERENCE_BEFORE)
        batch_op.drop_constraint(op.f("ck_payments_purpose"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_payments_purpose"), "purpose IN ('purchase', 'auto_recharge')"
        )
        batch_op.drop_constraint(op.f("fk_payments_invoice_id_invoices"), type_="foreignkey")
        batch_op.drop_constraint(op.f("uq_payments_invoice_id"), type_="unique")
        batch_op.drop_column("invoice_id")
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_invoice_id")
        batch_op.drop_index("ix_usage_events_open_unpaid")
        batch_op.drop_constraint(op.f("ck_usage_events_unit_with_quantity"), type_="check")
        batch_op.drop_column("invoice_id")
        batch_op.drop_column("quantity")
        batch_op.drop_column("unit")
    op.drop_table("invoice_sequence")
    op.drop_table("invoice_attempts")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_next_charge_at")
        batch_op.drop_index("ix_invoices_team_id_period_start")
    op.drop_table("invoices")
