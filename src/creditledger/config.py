"""Settings, read from the environment with the prefix ``CREDITLEDGER_``.

This is the only module that reads the environment. Money settings are decimal
strings in dollars, like the API, and are exposed in nano-dollars.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from creditledger.domain.errors import InvalidRequest
from creditledger.domain.money import parse_amount
from creditledger.domain.payments import check_webhook_secret
from creditledger.domain.promo_codes import MAX_FAILED_ATTEMPTS
from creditledger.domain.tiers import DEFAULT_TIERS, Tier


class Settings(BaseSettings):
    # Settings hold secrets: a refused value is named, never echoed.
    model_config = SettingsConfigDict(
        env_prefix="CREDITLEDGER_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    database_url: str = "sqlite:///./creditledger.db"
    """SQLAlchemy URL. ``sqlite:///path`` (embedded default) or
    ``postgresql+psycopg://user@host/db``."""

    host: str = "127.0.0.1"
    port: int = 8000

    signup_credit: str = "3.00"
    """Promotional credit given with every sign-up, in dollars."""
    signup_credit_days: int = Field(default=30, ge=1, le=3650)
    """Days until the sign-up credit expires."""

    operator_grant_max: str = "100000.00"
    """The largest single operator grant, in dollars."""

    idempotency_ttl_hours: int = Field(default=24, ge=24)
    """How long an Idempotency-Key's first answer is replayed."""

    late_arrival_window_seconds: int = Field(default=3600, ge=0)
    """How long after an expiry late usage may still draw the expired credit."""

    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=8)
    """argon2id parameters; tests lower them to stay fast."""

    # Throttles (docs/decisions/0006): failed attempts counted in a moving window; over
    # any one budget, the next attempt is refused with 429 `too_many_attempts`.
    login_failures_per_account: int = Field(default=10, ge=1)
    """Wrong passwords for one email (known or not) in a login window."""
    login_failures_per_address: int = Field(default=30, ge=1)
    """Failed logins from one client address (an IPv6 /64) in a login window."""
    login_window_seconds: int = Field(default=900, ge=1)
    signups_per_address: int = Field(default=10, ge=1)
    """Sign-up attempts from one client address in a sign-up window (each sign-up
    comes with free credit)."""
    signup_window_seconds: int = Field(default=3600, ge=1)
    promo_failures_per_team: int = Field(default=MAX_FAILED_ATTEMPTS, ge=1)
    """Refused promo code redemptions by one team in an hour (default 10)."""
    promo_failures_per_user: int = Field(default=20, ge=1)
    """Refused redemptions by one user in an hour, whichever of their teams they try."""
    promo_failures_per_address: int = Field(default=30, ge=1)
    """Refused redemptions from one client address in an hour, whoever tries."""

    tiers: str | None = None
    """Rate-limit tiers as JSON, replacing the default tiers: a list of
    ``{"level": 1, "reached_at": "10.00", "requests_per_minute": 100,
    "max_output_tokens": 16384}`` (``reached_at`` null: operators only)."""

    redis_url: str | None = None
    """When set, rate-limit counters live in Redis and are shared by all processes."""

    # Usage intake on NATS JetStream (docs/decisions/0025): unset, nothing uses NATS.
    nats_url: str | None = None
    """``nats://host:4222`` (several separated by commas, for a cluster): where gateways
    publish usage and ``creditledger consume`` takes it from."""
    nats_subject_prefix: str = Field(
        default="usage", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
    )
    """Usage is published on ``<prefix>.events.<team_id>``; rejects go to ``<prefix>.rejected``."""
    nats_stream: str = Field(default="USAGE", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    """The stream of usage events; its rejects are kept in ``<stream>_REJECTED``."""
    nats_consumer: str = Field(default="creditledger", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """The durable consumer that every ``consume`` worker shares."""
    nats_replicas: int = Field(default=1, ge=1, le=5)
    """Copies of each stream in a NATS cluster (3 for a cluster of 3)."""
    nats_max_bytes: int = Field(default=8 * 1024**3, ge=1024**2)
    nats_max_msgs: int = Field(default=50_000_000, ge=1000)
    """How much unconsumed usage the stream holds; when full, publishes are refused (never
    dropped) until the consumers catch up."""
    nats_duplicate_window_seconds: int = Field(default=120, ge=1, le=24 * 3600)
    """How long the stream drops a publish repeating a ``Nats-Msg-Id`` (the database
    settles duplicates at any age)."""
    nats_ack_wait_seconds: int = Field(default=60, ge=1, le=3600)
    """A batch not acknowledged within this is delivered again (to any worker)."""
    nats_max_ack_pending: int = Field(default=20_000, ge=1000)
    """Messages delivered and not yet acknowledged, over all workers."""
    nats_monitor_url: str | None = None
    """The server's monitoring address (``http://host:8222``): ``streams setup`` reads
    from it whether the server syncs every write to disk."""

    notify_allow_private_urls: bool = False
    """Notices may go to http and to private, loopback and link-local addresses: for
    local use and tests only (an attacker's webhook could otherwise reach the network
    behind the server)."""

    run_jobs_in_process: bool = True
    """``serve`` runs the periodic jobs itself (embedded default)."""

    environment: Literal["development", "production"] = "development"
    """``production`` declares a deployment that takes real money: only then are live
    Stripe keys accepted."""

    payment_provider: Literal["sandbox", "stripe"] = "sandbox"
    """Who takes payments: the offline ``sandbox`` (default) or ``stripe``."""
    public_url: str | None = None
    """Where this service is reached from outside: checkout links, return links and the
    sandbox's webhook deliveries (``<public_url>/v1/webhooks/sandbox``). Unset: the
    address ``serve`` listens on (:attr:`public_base_url`)."""
    sandbox_webhook_secret: str | None = None
    """Signs the sandbox's webhooks. Unset: a random one is made once per database and
    kept there. Never empty, never a published default."""
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    """Another address for Stripe's API (stripe-mock, a local emulator); unset: Stripe's."""
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    """How far a webhook signature's timestamp may be from now, either way."""

    purchase_min: str = "10.00"
    purchase_max: str = "10000.00"
    """Bounds of one purchase (and of an auto-recharge's target), in dollars."""
    auto_recharge_monthly_cap: str = "5000.00"
    """The most auto-recharge may charge a team in one calendar month (UTC), in dollars."""
    purchase_pending_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    """A purchase not paid within this many hours fails, and its checkout is closed."""

    invoice_minimum_charge: str = "0.50"
    """An invoice whose total is under this is not charged: it rolls into the next one."""
    invoice_retry_days: str = "1,3,7"
    """Days after an invoice's first failed charge on which it is charged again; once
    the last retry fails the invoice is uncollectible."""
    invoice_seller: str = "creditledger\nBilling department"
    """Who issues the invoices: the lines printed at the top of every invoice PDF."""

    push_changes: bool = True
    """On PostgreSQL, authorization listens for committed changes (``LISTEN``) and
    decides from memory while it hears them; off, it reads each team per decision."""
    hold_seconds: int = Field(default=600, ge=1, le=24 * 3600)
    """How long a hold placed by an authorization lasts unless its usage or a release
    ends it sooner (docs/decisions/0017)."""

    # The web pages (docs/decisions/0016).
    web_session_hours: int = Field(default=12, ge=1, le=24 * 30)
    """How long a sign-in on the web pages lasts; signing out ends it sooner."""
    sales_contact: str = "sales@creditledger.local"
    """Where the Billing page's "Contact sales for volume pricing" points: an email
    address (a mailto link) or an https URL."""

    @field_validator("invoice_retry_days")
    @classmethod
    def _retry_days(cls, value: str) -> str:
        try:
            days = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("CREDITLEDGER_INVOICE_RETRY_DAYS is days, such as 1,3,7") from None
        if any(d < 1 for d in days) or days != sorted(set(days)):
            raise ValueError("CREDITLEDGER_INVOICE_RETRY_DAYS must be increasing whole days")
        return value

    @field_validator("sales_contact")
    @classmethod
    def _contact(cls, value: str) -> str:
        value = value.strip()
        email = "@" in value and not any(c.isspace() or c in "<>\"'/:" for c in value)
        if not (
            email or (value.startswith("https://") and value.isprintable() and " " not in value)
        ):
            raise ValueError("CREDITLEDGER_SALES_CONTACT is an email address or an https:// URL")
        return value

    @field_validator("sandbox_webhook_secret", "stripe_webhook_secret")
    @classmethod
    def _no_public_or_empty_secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        name = f"CREDITLEDGER_{(info.field_name or 'secret').upper()}"
        try:
            return check_webhook_secret(value, name)
        except InvalidRequest as exc:
            raise ValueError(exc.message) from exc

    @model_validator(mode="after")
    def _live_keys_only_in_production(self) -> Settings:
        key = self.stripe_secret_key or ""
        if key.startswith(("sk_live_", "rk_live_")) and self.environment != "production":
            raise ValueError(
                "CREDITLEDGER_STRIPE_SECRET_KEY is a live key, which takes real money: set "
                "CREDITLEDGER_ENVIRONMENT=production to use it, or use a test key (sk_test_…)."
            )
        return self

    @property
    def public_base_url(self) -> str:
        """``public_url`` without its trailing slash, else where ``serve`` listens
        (a wildcard host is reached on the loopback address)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
            self.host, self.host
        )
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @cached_property
    def purchase_min_nanos(self) -> int:
        return parse_amount(self.purchase_min, param="CREDITLEDGER_PURCHASE_MIN", whole_cents=True)

    @cached_property
    def purchase_max_nanos(self) -> int:
        return parse_amount(self.purchase_max, param="CREDITLEDGER_PURCHASE_MAX", whole_cents=True)

    @cached_property
    def auto_recharge_monthly_cap_nanos(self) -> int:
        return parse_amount(
            self.auto_recharge_monthly_cap, param="CREDITLEDGER_AUTO_RECHARGE_MONTHLY_CAP"
        )

    @cached_property
    def invoice_minimum_charge_nanos(self) -> int:
        return parse_amount(
            self.invoice_minimum_charge,
            param="CREDITLEDGER_INVOICE_MINIMUM_CHARGE",
            minimum=0,
            whole_cents=True,
        )

    @cached_property
    def invoice_retry_schedule(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.invoice_retry_days.split(",") if part.strip())

    @cached_property
    def signup_credit_nanos(self) -> int:
        return parse_amount(self.signup_credit, param="CREDITLEDGER_SIGNUP_CREDIT", minimum=0)

    @cached_property
    def operator_grant_max_nanos(self) -> int:
        return parse_amount(self.operator_grant_max, param="CREDITLEDGER_OPERATOR_GRANT_MAX")

    @cached_property
    def tier_table(self) -> tuple[Tier, ...]:
        if self.tiers is None:
            return DEFAULT_TIERS
        rows = json.loads(self.tiers)
        table = tuple(
            Tier(
                level=int(row["level"]),
                reached_at=None
                if row.get("reached_at") is None
                else parse_amount(row["reached_at"], param="CREDITLEDGER_TIERS", minimum=0),
                requests_per_minute=int(row["requests_per_minute"]),
                max_output_tokens=int(row["max_output_tokens"]),
            )
            for row in rows
        )
        if not table or table[0].reached_at != 0:
            raise ValueError("CREDITLEDGER_TIERS must start with a tier reached at 0.00")
        return table
