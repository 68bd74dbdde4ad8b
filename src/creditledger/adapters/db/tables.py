"""The schema, in SQLAlchemy Core. Migrations in ``migrations/`` create it.

Money columns are BIGINT nano-dollars named ``*_nanos``; times are UTC
microseconds (:class:`UtcMicros`). Constraints carry the rules the database
must enforce whatever the code does: remaining never below zero, one row per
idempotency key, one membership per (team, user), a promo code's redemptions
never above its maximum and at most one per team.
"""

from __future__ import annotations

import sqlalchemy as sa

from creditledger.adapters.db import key_checks
from creditledger.adapters.db.types import BigSerial, JsonDoc, UtcMicros

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = sa.String(40)

PER_STATEMENT_KEYS = frozenset(key_checks.KEYS)
"""Foreign keys (table, column, referred table) that PostgreSQL checks once per
statement by trigger instead (migration 0013, docs/decisions/0031): declared here, and
foreign keys on SQLite."""

ROOM_FOR_UPDATES = {"fillfactor": 50}
"""PostgreSQL storage of the tables every charge updates (``teams``, ``grants``):
pages filled to half, so each row's next version fits on its own page and the update
is a HOT update (migration 0016, docs/decisions/0039)."""

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
)

teams = sa.Table(
    "teams",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("billing_mode", sa.String(20), nullable=False, server_default="prepaid"),
    sa.Column("tier_level_override", sa.Integer, nullable=True),
    sa.Column("lifetime_paid_nanos", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("credit_nanos", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("unpaid_nanos", sa.BigInteger, nullable=False, server_default="0"),
    # Bumped by every write that can change an authorization decision, so caches in
    # any process can tell that their copy of the team is stale.
    sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.CheckConstraint("billing_mode IN ('prepaid', 'pay_as_you_go')", name="billing_mode"),
    sa.CheckConstraint("lifetime_paid_nanos >= 0", name="lifetime_paid_nonnegative"),
    sa.CheckConstraint("credit_nanos >= 0", name="credit_nonnegative"),
    sa.CheckConstraint(
        "tier_level_override IS NULL OR tier_level_override BETWEEN 0 AND 5", name="tier_level"
    ),
    postgresql_with=ROOM_FOR_UPDATES,
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.CheckConstraint("role IN ('admin', 'member')", name="role"),
    sa.Index("ix_memberships_user_id", "user_id"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("revoked_at", UtcMicros, nullable=True),
    sa.CheckConstraint("kind IN ('personal', 'operator', 'service')", name="kind"),
    sa.CheckConstraint("(kind = 'personal') = (user_id IS NOT NULL)", name="personal_has_user"),
)

# Browser sessions (docs/decisions/0016): the cookie's secret is kept only as a hash.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("session_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("expires_at", UtcMicros, nullable=False),
    sa.Column("revoked_at", UtcMicros, nullable=True),
    sa.CheckConstraint("expires_at > created_at", name="ends_after_start"),
    sa.Index("ix_web_sessions_user_id", "user_id"),
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("amount_nanos", sa.BigInteger, nullable=False),
    sa.Column("remaining_nanos", sa.BigInteger, nullable=False),
    sa.Column("scope", JsonDoc, nullable=True),
    sa.Column("is_scoped", sa.Boolean, nullable=False),
    sa.Column("effective_at", UtcMicros, nullable=False),
    sa.Column("expires_at", UtcMicros, nullable=True),
    sa.Column("voided_at", UtcMicros, nullable=True),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.CheckConstraint("kind IN ('promotional', 'prepaid')", name="kind"),
    sa.CheckConstraint(
        "source IN ('signup', 'promo_code', 'purchase', 'auto_recharge', 'manual', 'refund')",
        name="source",
    ),
    sa.CheckConstraint("amount_nanos > 0", name="amount_positive"),
    sa.CheckConstraint("remaining_nanos >= 0", name="remaining_nonnegative"),
    sa.CheckConstraint("remaining_nanos <= amount_nanos", name="remaining_within_amount"),
    sa.CheckConstraint(
        "expires_at IS NULL OR expires_at > effective_at", name="expiry_after_effective"
    ),
    sa.CheckConstraint(
        "kind = 'promotional' OR (expires_at IS NULL AND NOT is_scoped)",
        name="prepaid_unlimited",
    ),
    sa.Index("ix_grants_team_id", "team_id"),
    postgresql_with=ROOM_FOR_UPDATES,
)

ledger_transactions = sa.Table(
    "ledger_transactions",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("type", sa.String(12), nullable=False),
    sa.Column("occurred_at", UtcMicros, nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("reference", sa.String(255), nullable=True),
    sa.CheckConstraint(
        "type IN ('grant', 'usage', 'expiry', 'void', 'refund', 'invoice', 'adjustment')",
        name="type",
    ),
)

postings = sa.Table(
    "postings",
    metadata,
    sa.Column("seq", BigSerial, primary_key=True, autoincrement=True),
    sa.Column("transaction_id", Id, sa.ForeignKey("ledger_transactions.id"), nullable=False),
    sa.Column("account", sa.String(80), nullable=False),
    sa.Column("amount_nanos", sa.BigInteger, nullable=False),
    # The team-side columns below are set only on postings to a team's own
    # accounts (a grant or its unpaid balance): those rows are the credit history.
    sa.Column("team_id", Id, nullable=True),
    sa.Column("grant_id", Id, sa.ForeignKey("grants.id"), nullable=True),
    sa.Column("balance_after_nanos", sa.BigInteger, nullable=True),
    sa.CheckConstraint(
        "(team_id IS NULL) = (balance_after_nanos IS NULL)", name="team_side_has_balance"
    ),
    # The credit history reads a team's postings newest first; platform postings
    # (team_id NULL) are never read that way, so they stay out of the index.
    sa.Index(
        "ix_postings_team_id_seq",
        "team_id",
        "seq",
        sqlite_where=sa.text("team_id IS NOT NULL"),
        postgresql_where=sa.text("team_id IS NOT NULL"),
    ),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("principal_id", Id, primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("expires_at", UtcMicros, nullable=False),
)

price_books = sa.Table(
    "price_books",
    metadata,
    sa.Column("id", BigSerial, primary_key=True, autoincrement=True),
    sa.Column("effective_from", UtcMicros, nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
)

prices = sa.Table(
    "prices",
    metadata,
    sa.Column("book_id", sa.BigInteger, sa.ForeignKey("price_books.id"), nullable=False),
    sa.Column("product", sa.String(20), nullable=False),
    sa.Column("model", sa.String(128), nullable=True),
    sa.Column("gpu", sa.String(128), nullable=True),
    sa.Column("meter", sa.String(64), nullable=False),
    sa.Column("unit_price_nanos", sa.BigInteger, nullable=False),
    sa.Column("per_units", sa.BigInteger, nullable=False),
    sa.CheckConstraint("unit_price_nanos >= 0", name="unit_price_nonnegative"),
    sa.CheckConstraint("per_units > 0", name="per_units_positive"),
    sa.CheckConstraint("model IS NOT NULL OR gpu IS NOT NULL", name="has_subject"),
    sa.Index("ix_prices_book_id", "book_id"),
)

team_pricing = sa.Table(
    "team_pricing",
    metadata,
    sa.Column("id", BigSerial, primary_key=True, autoincrement=True),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("effective_from", UtcMicros, nullable=False),
    sa.Column("discount_bp", sa.Integer, nullable=False, server_default="0"),
    sa.Column("prices", JsonDoc, nullable=True),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.CheckConstraint("discount_bp BETWEEN 0 AND 10000", name="discount_range"),
    sa.Index("ix_team_pricing_team_id", "team_id"),
)

usage_events = sa.Table(
    "usage_events",
    metadata,
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("event_id", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("product", sa.String(20), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("gpu", sa.String(128), nullable=True),
    sa.Column("occurred_at", UtcMicros, nullable=False),
    sa.Column("charge_nanos", sa.BigInteger, nullable=False),
    sa.Column("uncovered_nanos", sa.BigInteger, nullable=False),
    sa.Column("transaction_id", Id, nullable=True),
    sa.Column("received_at", UtcMicros, nullable=False),
    # "grant_id=nanos;…": what each grant paid, so a late event can re-allocate this one.
    sa.Column("draws", sa.Text, nullable=True),
    # The meter and its quantity when the event has exactly one (an invoice line shows them).
    sa.Column("unit", sa.String(64), nullable=True),
    sa.Column("quantity", sa.BigInteger, nullable=True),
    # The invoice that billed what credits did not cover; NULL while it is still open.
    sa.Column("invoice_id", Id, nullable=True),
    sa.CheckConstraint("charge_nanos >= 0", name="charge_nonnegative"),
    sa.CheckConstraint(
        "uncovered_nanos BETWEEN 0 AND charge_nanos", name="uncovered_within_charge"
    ),
    sa.CheckConstraint("(unit IS NULL) = (quantity IS NULL)", name="unit_with_quantity"),
    sa.Index("ix_usage_events_team_id_occurred_at", "team_id", "occurred_at", "event_id"),
    # What no invoice has billed yet: the invoices job and the drafts read only these.
    sa.Index(
        "ix_usage_events_open_unpaid",
        "team_id",
        "occurred_at",
        sqlite_where=sa.text("invoice_id IS NULL AND uncovered_nanos > 0"),
        postgresql_where=sa.text("invoice_id IS NULL AND uncovered_nanos > 0"),
    ),
    sa.Index(
        "ix_usage_events_invoice_id",
        "invoice_id",
        sqlite_where=sa.text("invoice_id IS NOT NULL"),
        postgresql_where=sa.text("invoice_id IS NOT NULL"),
    ),
)

# Invoices (docs/decisions/0013). A draft is not stored: it is read from the usage no
# invoice has billed yet. Opening inserts the row, takes the next number from
# `invoice_sequence` in the same transaction (so a rolled-back opening leaves no gap)
# and sets `usage_events.invoice_id` on what it bills. One invoice per team and month.

INVOICE_STATUSES = "'draft', 'open', 'paid', 'uncollectible', 'void'"

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("period_start", UtcMicros, nullable=False),
    sa.Column("period_end", UtcMicros, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=True, unique=True),
    sa.Column("number", sa.String(20), nullable=True, unique=True),
    sa.Column("lines", JsonDoc, nullable=False),
    sa.Column("promotional_applied_nanos", sa.BigInteger, nullable=False),
    sa.Column("prepaid_applied_nanos", sa.BigInteger, nullable=False),
    sa.Column("subtotal_nanos", sa.BigInteger, nullable=False),
    sa.Column("total_nanos", sa.BigInteger, nullable=False),
    sa.Column("exact_nanos", sa.BigInteger, nullable=False),
    sa.Column("carry_nanos", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("opened_at", UtcMicros, nullable=True),
    sa.Column("paid_at", UtcMicros, nullable=True),
    sa.Column("voided_at", UtcMicros, nullable=True),
    sa.Column("void_note", sa.Text, nullable=True),
    sa.Column("next_charge_at", UtcMicros, nullable=True),
    sa.Column("checkout_session_id", sa.String(255), nullable=True),
    sa.Column("checkout_url", sa.Text, nullable=True),
    sa.Column("updated_at", UtcMicros, nullable=False),
    sa.UniqueConstraint("team_id", "period_start"),
    sa.CheckConstraint(f"status IN ({INVOICE_STATUSES})", name="status"),
    sa.CheckConstraint("(sequence IS NULL) = (number IS NULL)", name="number_with_sequence"),
    sa.CheckConstraint("total_nanos >= 0", name="total_nonnegative"),
    sa.CheckConstraint("total_nanos % 10000000 = 0", name="total_whole_cents"),
    sa.CheckConstraint("exact_nanos = total_nanos + carry_nanos", name="exact_is_total_and_carry"),
    sa.Index("ix_invoices_team_id_period_start", "team_id", "period_start"),
    sa.Index(
        "ix_invoices_next_charge_at",
        "next_charge_at",
        sqlite_where=sa.text("next_charge_at IS NOT NULL"),
        postgresql_where=sa.text("next_charge_at IS NOT NULL"),
    ),
)

invoice_attempts = sa.Table(
    "invoice_attempts",
    metadata,
    sa.Column("invoice_id", Id, sa.ForeignKey("invoices.id"), primary_key=True),
    # 1, 2, …: the primary key lets exactly one of two racing job runs start each attempt.
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("at", UtcMicros, nullable=False),
    sa.Column("outcome", sa.String(12), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("provider_payment_id", sa.String(255), nullable=True),
    sa.CheckConstraint("outcome IN ('pending', 'succeeded', 'failed')", name="outcome"),
)

# One row: the last invoice number given. Opening an invoice increments it in its own
# transaction; the row lock makes concurrent openings take turns.
invoice_sequence = sa.Table(
    "invoice_sequence",
    metadata,
    sa.Column("name", sa.String(20), primary_key=True),
    sa.Column("last_value", sa.BigInteger, nullable=False),
)

# Purchases, payments and auto-recharge (docs/decisions/0004). A provider payment
# is granted at most once: UNIQUE (provider, provider_payment_id) on `payments`.

PAYMENT_STATUSES = "'pending', 'failed', 'succeeded', 'disputed', 'refunded'"
ONE_PAYMENT_REFERENCE = (
    "(CASE WHEN purchase_id IS NULL THEN 0 ELSE 1 END) + "
    "(CASE WHEN recharge_id IS NULL THEN 0 ELSE 1 END) + "
    "(CASE WHEN invoice_id IS NULL THEN 0 ELSE 1 END) = 1"
)

payment_methods = sa.Table(
    "payment_methods",
    metadata,
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("provider", sa.String(20), nullable=False),
    sa.Column("customer_ref", sa.String(255), nullable=False),
    sa.Column("payment_method_ref", sa.String(255), nullable=True),
    sa.Column("updated_at", UtcMicros, nullable=False),
)

purchases = sa.Table(
    "purchases",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("provider", sa.String(20), nullable=False),
    sa.Column("amount_nanos", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("checkout_session_id", sa.String(255), nullable=True, unique=True),
    sa.Column("checkout_url", sa.Text, nullable=True),
    sa.Column("provider_payment_id", sa.String(255), nullable=True),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("updated_at", UtcMicros, nullable=False),
    sa.CheckConstraint("amount_nanos > 0", name="amount_positive"),
    sa.CheckConstraint(f"status IN ({PAYMENT_STATUSES})", name="status"),
    sa.Index("ix_purchases_team_id", "team_id"),
    # The reconciliation job finds pending purchases past their time (docs/decisions/0005).
    sa.Index("ix_purchases_status_created_at", "status", "created_at"),
)

recharges = sa.Table(
    "recharges",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("amount_nanos", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("provider_payment_id", sa.String(255), nullable=True),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("updated_at", UtcMicros, nullable=False),
    sa.CheckConstraint("amount_nanos > 0", name="amount_positive"),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    sa.Index("ix_recharges_team_id_created_at", "team_id", "created_at"),
    # At most one recharge in flight per team: the database, not the code, decides.
    sa.Index(
        "uq_recharges_one_pending",
        "team_id",
        unique=True,
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    ),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("provider", sa.String(20), nullable=False),
    sa.Column("provider_payment_id", sa.String(255), nullable=False),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("purchase_id", Id, sa.ForeignKey("purchases.id"), nullable=True, unique=True),
    sa.Column("recharge_id", Id, sa.ForeignKey("recharges.id"), nullable=True, unique=True),
    sa.Column("invoice_id", Id, sa.ForeignKey("invoices.id"), nullable=True, unique=True),
    sa.Column("amount_nanos", sa.BigInteger, nullable=False),
    sa.Column("refunded_nanos", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refund_written_off_nanos", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("grant_id", Id, sa.ForeignKey("grants.id"), nullable=True, unique=True),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("updated_at", UtcMicros, nullable=False),
    sa.UniqueConstraint("provider", "provider_payment_id"),
    sa.CheckConstraint("amount_nanos > 0", name="amount_positive"),
    sa.CheckConstraint(
        "refunded_nanos >= 0 AND refund_written_off_nanos BETWEEN 0 AND refunded_nanos",
        name="refunds",
    ),
    sa.CheckConstraint("purpose IN ('purchase', 'auto_recharge', 'invoice')", name="purpose"),
    sa.CheckConstraint("status IN ('succeeded', 'disputed', 'refunded')", name="status"),
    sa.CheckConstraint(ONE_PAYMENT_REFERENCE, name="one_reference"),
    sa.Index("ix_payments_team_id", "team_id"),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("provider", sa.String(20), primary_key=True),
    sa.Column("event_id", sa.String(255), primary_key=True),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("received_at", UtcMicros, nullable=False),
)

auto_recharge_settings = sa.Table(
    "auto_recharge_settings",
    metadata,
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("threshold_nanos", sa.BigInteger, nullable=False),
    sa.Column("restore_to_nanos", sa.BigInteger, nullable=False),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("updated_at", UtcMicros, nullable=False),
    sa.CheckConstraint("threshold_nanos >= 0", name="threshold_nonnegative"),
    sa.CheckConstraint(
        "restore_to_nanos >= threshold_nanos + 10000000000", name="restore_above_threshold"
    ),
)

# Payment hardening (docs/decisions/0005). A provider payment that does not match what
# was bought is never granted: it is written here for an operator to review. Its
# claimed amount is the provider's untrusted number, kept as the decimal dollar string
# it amounts to, since it may lie outside any integer column's range.

PAYMENT_REVIEW_REASONS = (
    "'unknown_reference', 'no_payment_id', 'currency_mismatch', 'amount_not_positive', "
    "'amount_mismatch', 'purchase_closed', 'already_paid', 'not_granted'"
)

payment_reviews = sa.Table(
    "payment_reviews",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("provider", sa.String(20), nullable=False),
    sa.Column("event_id", sa.String(255), nullable=True),
    sa.Column("provider_payment_id", sa.String(255), nullable=True),
    sa.Column("purpose", sa.String(16), nullable=True),
    sa.Column("reference", sa.String(255), nullable=True),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=True),
    sa.Column("amount_claimed", sa.String(64), nullable=False),
    sa.Column("amount_expected_nanos", sa.BigInteger, nullable=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
    # One row per payment and reason, however often a poll or a provider repeats it.
    sa.UniqueConstraint("provider", "provider_payment_id", "reason"),
    sa.CheckConstraint(f"reason IN ({PAYMENT_REVIEW_REASONS})", name="reason"),
    sa.Index("ix_payment_reviews_created_at", "created_at"),
)

# Secrets this service makes for itself, one per name and database, made once by
# whichever process starts first (INSERT … ON CONFLICT DO NOTHING, then read back).
service_secrets = sa.Table(
    "service_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
)

# The sandbox payment provider's own records (adapters/payments/sandbox_store.py): what
# an outside provider would keep on its side, here in the same database so that every
# process and every restart sees the same checkouts and payments.

sandbox_sessions = sa.Table(
    "sandbox_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
    # What the checkout pays for: a purchase or an invoice (``purpose``), by our id.
    sa.Column("reference", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False, server_default="purchase"),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("amount_nanos", sa.BigInteger, nullable=False),
    sa.Column("customer_ref", sa.String(255), nullable=False),
    sa.Column("payment_id", sa.String(64), nullable=False, unique=True),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("updated_at", UtcMicros, nullable=False),
    sa.CheckConstraint("amount_nanos > 0", name="amount_positive"),
    sa.CheckConstraint("status IN ('open', 'paid', 'declined', 'expired')", name="status"),
)

sandbox_payments = sa.Table(
    "sandbox_payments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # Off-session charges: the caller's idempotency key. NULL for a checkout's payment,
    # whose session is its key.
    sa.Column("idempotency_key", sa.String(255), nullable=True, unique=True),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("intent", JsonDoc, nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Index("ix_sandbox_payments_created_at", "created_at"),
)

# Promo codes (docs/decisions/0002). Redemptions race for the count, guarded by a
# conditional UPDATE and CHECK (redemptions_count <= max_redemptions); a team
# redeems a code once: UNIQUE (promo_code_id, team_id) on `promo_redemptions`.

promo_codes = sa.Table(
    "promo_codes",
    metadata,
    sa.Column("id", Id, primary_key=True),
    # The normal form (upper-case letters and digits): what redemptions are matched on.
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("display_code", sa.String(64), nullable=False),
    sa.Column("amount_nanos", sa.BigInteger, nullable=False),
    sa.Column("scope", JsonDoc, nullable=True),
    sa.Column("valid_from", UtcMicros, nullable=False),
    sa.Column("redeem_by", UtcMicros, nullable=True),
    sa.Column("credit_expires_at", UtcMicros, nullable=True),
    sa.Column("credit_valid_days", sa.Integer, nullable=True),
    sa.Column("max_redemptions", sa.Integer, nullable=False),
    sa.Column("redemptions_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("disabled_at", UtcMicros, nullable=True),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("created_by", Id, nullable=False),
    sa.CheckConstraint("amount_nanos > 0", name="amount_positive"),
    sa.CheckConstraint("max_redemptions > 0", name="max_redemptions_positive"),
    sa.CheckConstraint("redemptions_count >= 0", name="redemptions_nonnegative"),
    sa.CheckConstraint("redemptions_count <= max_redemptions", name="redemptions_within_max"),
    sa.CheckConstraint(
        "credit_expires_at IS NULL OR credit_valid_days IS NULL", name="one_credit_expiry"
    ),
    sa.CheckConstraint(
        "credit_valid_days IS NULL OR credit_valid_days > 0", name="credit_valid_days_positive"
    ),
    sa.CheckConstraint("redeem_by IS NULL OR redeem_by > valid_from", name="redeem_by_after_valid"),
)

promo_redemptions = sa.Table(
    "promo_redemptions",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("promo_code_id", Id, sa.ForeignKey("promo_codes.id"), nullable=False),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("grant_id", Id, sa.ForeignKey("grants.id"), nullable=False, unique=True),
    sa.Column("redeemed_by", Id, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("redeemed_at", UtcMicros, nullable=False),
    # Each team redeems a code once, however many requests race for it.
    sa.UniqueConstraint("promo_code_id", "team_id"),
    sa.Index("ix_promo_redemptions_team_id", "team_id"),
)

# The operator audit log (docs/decisions/0006): every operator action and every operator
# read of a team's billing. Append-only like the ledger: triggers refuse UPDATE and
# DELETE. `team_id` has no foreign key: the log keeps what was asked (the team filter of
# an audit read included), and no row of it ever stops a team's data from changing.
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", BigSerial, primary_key=True, autoincrement=True),
    sa.Column("id", Id, nullable=False, unique=True),
    sa.Column("at", UtcMicros, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("actor_name", sa.String(200), nullable=True),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("team_id", Id, nullable=True),
    sa.Column("client", sa.String(100), nullable=True),
    sa.Column("detail", JsonDoc, nullable=False),
    sa.Index("ix_audit_events_team_id_seq", "team_id", "seq"),
    sa.Index("ix_audit_events_actor_seq", "actor", "seq"),
)

notification_webhooks = sa.Table(
    "notification_webhooks",
    metadata,
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", JsonDoc, nullable=True),
    sa.Column("secret", sa.String(64), nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("updated_at", UtcMicros, nullable=False),
    sa.Column("disabled_at", UtcMicros, nullable=True),
    sa.Column("disabled_reason", sa.String(500), nullable=True),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("payload", JsonDoc, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UtcMicros, nullable=False),
    sa.Column("next_attempt_at", UtcMicros, nullable=True),
    sa.Column("claimed_until", UtcMicros, nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("delivered_at", UtcMicros, nullable=True),
    sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state"),
    sa.Index("ix_notifications_due", "state", "next_attempt_at"),
    sa.Index("ix_notifications_team_id", "team_id", "id"),
)

notice_marks = sa.Table(
    "notice_marks",
    metadata,
    sa.Column("team_id", Id, sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("created_at", UtcMicros, nullable=False),
)
