"""promo codes and their redemptions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

A code's redemption count is guarded by CHECK (redemptions_count <= max_redemptions);
UNIQUE (promo_code_id, team_id) lets each team redeem a code once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "promo_codes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("display_code", sa.String(length=64), nullable=False),
        sa.Column("amount_nanos", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.Column("valid_from", sa.BigInteger(), nullable=False),
        sa.Column("redeem_by", sa.BigInteger(), nullable=True),
        sa.Column("credit_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("credit_valid_days", sa.Integer(), nullable=True),
        sa.Column("max_redemptions", sa.Integer(), nullable=False),
        sa.Column("redemptions_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("disabled_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.CheckConstraint("amount_nanos > 0", name=op.f("ck_promo_codes_amount_positive")),
        sa.CheckConstraint(
            "max_redemptions > 0", name=op.f("ck_promo_codes_max_redemptions_positive")
        ),
        sa.CheckConstraint(
            "redemptions_count >= 0", name=op.f("ck_promo_codes_redemptions_nonnegative")
        ),
        sa.CheckConstraint(
            "redemptions_count <= max_redemptions",
            name=op.f("ck_promo_codes_redemptions_within_max"),
        ),
        sa.CheckConstraint(
            "credit_expires_at IS NULL OR credit_valid_days IS NULL",
            name=op.f("ck_promo_codes_one_credit_expiry"),
        ),
        sa.CheckConstraint(
            "credit_valid_days IS NULL OR credit_valid_days > 0",
            name=op.f("ck_promo_codes_credit_valid_days_positive"),
        ),
        sa.CheckConstraint(
            "redeem_by IS NULL OR redeem_by > valid_from",
            name=op.f("ck_promo_codes_redeem_by_after_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promo_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_promo_codes_code")),
    )
    op.create_table(
        "promo_redemptions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("promo_code_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("grant_id", sa.String(length=40), nullable=False),
        sa.Column("redeemed_by", sa.String(length=40), nullable=False),
        sa.Column("redeemed_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.id"], name=op.f("fk_promo_redemptions_grant_id_grants")
        ),
        sa.ForeignKeyConstraint(
            ["promo_code_id"],
            ["promo_codes.id"],
            name=op.f("fk_promo_redemptions_promo_code_id_promo_codes"),
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_by"], ["users.id"], name=op.f("fk_promo_redemptions_redeemed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_promo_redemptions_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promo_redemptions")),
        sa.UniqueConstraint("grant_id", name=op.f("uq_promo_redemptions_grant_id")),
        sa.UniqueConstraint(
            "promo_code_id", "team_id", name=op.f("uq_promo_redemptions_promo_code_id_team_id")
        ),
    )
    with op.batch_alter_table("promo_redemptions", schema=None) as batch_op:
        batch_op.create_index("ix_promo_redemptions_team_id", ["team_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("promo_redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_promo_redemptions_team_id")

    op.drop_table("promo_redemptions")
    op.drop_table("promo_codes")
