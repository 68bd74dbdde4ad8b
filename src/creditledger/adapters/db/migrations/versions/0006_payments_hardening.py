"""payments hardening: payment reviews, service secrets, the sandbox's own records

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

A provider payment that does not match what was bought is written to
``payment_reviews`` instead of being granted (one row per payment and reason).
``service_secrets`` holds secrets made once per database (the sandbox's webhook
signing secret when none is configured). ``sandbox_sessions`` and
``sandbox_payments`` are the sandbox provider's own checkouts and payments, so that
every process and every restart sees them. Pending purchases are found by status and
age for expiry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

REVIEW_REASONS = (
    "'unknown_reference', 'no_payment_id', 'currency_mismatch', 'amount_not_positive', "
    "'amount_mismatch', 'purchase_closed', 'already_paid', 'not_granted'"
)
JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_purchases_status_created_at", ["status", "created_at"], unique=False
        )

    op.create_table(
        "payment_reviews",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("provider_payment_id", sa.String(length=255), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=True),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("team_id", sa.String(length=40), nullable=True),
        sa.Column("amount_claimed", sa.String(length=64), nullable=False),
        sa.Column("amount_expected_nanos", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(f"reason IN ({REVIEW_REASONS})", name=op.f("ck_payment_reviews_reason")),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_payment_reviews_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_reviews")),
        sa.UniqueConstraint(
            "provider",
            "provider_payment_id",
            "reason",
            name=op.f("uq_payment_reviews_provider_provider_payment_id_reason"),
        ),
    )
    with op.batch_alter_table("payment_reviews", schema=None) as batch_op:
        batch_op.create_index("ix_payment_reviews_created_at", ["created_at"], unique=False)

    op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_service_secrets")),
    )

    op.create_table(
        "sandbox_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("purchase_id", sa.String(length=64), nullable=False),
        sa.Column("team_id", sa.String(length=64), nullable=False),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_nanos > 0", name=op.f("ck_sandbox_sessions_amount_positive")),
        sa.CheckConstraint(
            "status IN ('open', 'paid', 'declined', 'expired')",
            name=op.f("ck_sandbox_sessions_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_sessions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_sandbox_sessions_idempotency_key")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_sandbox_sessions_payment_id")),
    )

    op.create_table(
        "sandbox_payments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("intent", JsonDoc, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_payments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_sandbox_payments_idempotency_key")),
    )
    with op.batch_alter_table("sandbox_payments", schema=None) as batch_op:
        batch_op.create_index("ix_sandbox_payments_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sandbox_payments", schema=None) as batch_op:
        batch_op.drop_index("ix_sandbox_payments_created_at")
    op.drop_table("sandbox_payments")
    op.drop_table("sandbox_sessions")
    op.drop_table("service_secrets")
    with op.batch_alter_table("payment_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_reviews_created_at")
    op.drop_table("payment_reviews")
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index("ix_purchases_status_created_at")
