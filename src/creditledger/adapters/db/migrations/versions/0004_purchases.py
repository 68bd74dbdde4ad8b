"""purchases, payments, webhook events, auto-recharge

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

A provider payment is granted at most once (UNIQUE provider, provider_payment_id);
a webhook event is processed at most once (its primary key); a team has at most
one recharge in flight (a partial UNIQUE index on pending recharges).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PAYMENT_STATUSES = "'pending', 'failed', 'succeeded', 'disputed', 'refunded'"


def upgrade() -> None:
    op.create_table(
        "payment_methods",
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=False),
        sa.Column("payment_method_ref", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_payment_methods_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_payment_methods")),
    )
    op.create_table(
        "purchases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("provider_payment_id", sa.String(length=255), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_nanos > 0", name=op.f("ck_purchases_amount_positive")),
        sa.CheckConstraint(f"status IN ({PAYMENT_STATUSES})", name=op.f("ck_purchases_status")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_purchases_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        sa.UniqueConstraint("checkout_session_id", name=op.f("uq_purchases_checkout_session_id")),
    )
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.create_index("ix_purchases_team_id", ["team_id"], unique=False)

    op.create_table(
        "recharges",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("provider_payment_id", sa.String(length=255), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_nanos > 0", name=op.f("ck_recharges_amount_positive")),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')", name=op.f("ck_recharges_status")
        ),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_recharges_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recharges")),
    )
    with op.batch_alter_table("recharges", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recharges_team_id_created_at", ["team_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "uq_recharges_one_pending",
            ["team_id"],
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )

    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("provider_payment_id", sa.String(length=255), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("purchase_id", sa.String(length=40), nullable=True),
        sa.Column("recharge_id", sa.String(length=40), nullable=True),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
        sa.Column("refunded_nanos", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refund_written_off_nanos", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("grant_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_nanos > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "refunded_nanos >= 0 AND refund_written_off_nanos BETWEEN 0 AND refunded_nanos",
            name=op.f("ck_payments_refunds"),
        ),
        sa.CheckConstraint(
            "purpose IN ('purchase', 'auto_recharge')", name=op.f("ck_payments_purpose")
        ),
        sa.CheckConstraint(
            "status IN ('succeeded', 'disputed', 'refunded')", name=op.f("ck_payments_status")
        ),
        sa.CheckConstraint(
            "(purchase_id IS NULL) <> (recharge_id IS NULL)",
            name=op.f("ck_payments_one_reference"),
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.id"], name=op.f("fk_payments_grant_id_grants")
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["purchases.id"], name=op.f("fk_payments_purchase_id_purchases")
        ),
        sa.ForeignKeyConstraint(
            ["recharge_id"], ["recharges.id"], name=op.f("fk_payments_recharge_id_recharges")
        ),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_payments_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("grant_id", name=op.f("uq_payments_grant_id")),
        sa.UniqueConstraint(
            "provider", "provider_payment_id", name=op.f("uq_payments_provider_provider_payment_id")
        ),
        sa.UniqueConstraint("purchase_id", name=op.f("uq_payments_purchase_id")),
        sa.UniqueConstraint("recharge_id", name=op.f("uq_payments_recharge_id")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_team_id", ["team_id"], unique=False)

    op.create_table(
        "webhook_events",
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "event_id", name=op.f("pk_webhook_events")),
    )
    op.create_table(
        "auto_recharge_settings",
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold_nanos", sa.BigInteger(), nullable=False),
        sa.Column("restore_to_nanos", sa.BigInteger(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "threshold_nanos >= 0", name=op.f("ck_auto_recharge_settings_threshold_nonnegative")
        ),
        sa.CheckConstraint(
            "restore_to_nanos >= threshold_nanos + 10000000000",
            name=op.f("ck_auto_recharge_settings_restore_above_threshold"),
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_auto_recharge_settings_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_auto_recharge_settings")),
    )


def downgrade() -> None:
    op.drop_table("auto_recharge_settings")
    op.drop_table("webhook_events")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_team_id")

    op.drop_table("payments")
    with op.batch_alter_table("recharges", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_recharges_one_pending",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index("ix_recharges_team_id_created_at")

    op.drop_table("recharges")
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index("ix_purchases_team_id")

    op.drop_table("purchases")
    op.drop_table("payment_methods")
