"""The composition root: builds the engine and hands real adapters to the services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from creditledger.adapters.clock import SystemClock
from creditledger.adapters.db.changes import PgChangeFeed, SqliteChangeCounter, SqliteChangeFeed
from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.db.invariants import SqlInvariants
from creditledger.adapters.db.migrate import SqlSchemaStatus
from creditledger.adapters.db.secrets import StoredSecret, random_secret
from creditledger.adapters.db.uow import SqlUnitOfWorkFactory
from creditledger.adapters.holds.memory import MemoryHoldBook
from creditledger.adapters.holds.redis import RedisHoldBook
from creditledger.adapters.notify.webhooks import StandardWebhooks
from creditledger.adapters.passwords import Argon2Passwords
from creditledger.adapters.payments.delivery import HttpDelivery
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.adapters.payments.sandbox_store import SqlSandboxStore
from creditledger.adapters.payments.stripe import StripeProvider
from creditledger.adapters.ratelimit.limiter import LimitsRateLimiter
from creditledger.adapters.ratelimit.window import SlidingWindowCounter
from creditledger.config import Settings
from creditledger.domain.clock import Clock
from creditledger.domain.errors import InvalidRequest
from creditledger.services.context import Context
from creditledger.services.ports import ChangeCounter, ChangeFeed, PaymentProvider

SANDBOX_SECRET_NAME = "sandbox_webhook_secret"  # noqa: S105 - the name of a stored secret
CURSOR_SECRET_NAME = "cursor_secret"  # noqa: S105 - the name of a stored secret


def build_payment_provider(settings: Settings, clock: Clock, engine: sa.Engine) -> PaymentProvider:
    """The provider ``CREDITLEDGER_PAYMENT_PROVIDER`` names.

    The sandbox keeps its records in the service's database, signs with
    ``CREDITLEDGER_SANDBOX_WEBHOOK_SECRET`` or, when that is unset, with a random
    secret made once per database (read on first use), and links its pages and
    webhooks to :attr:`Settings.public_base_url`.
    """
    tolerance = settings.webhook_tolerance_seconds
    if settings.payment_provider == "stripe":
        if not settings.stripe_secret_key or not settings.stripe_webhook_secret:
            raise InvalidRequest(
                "The stripe provider needs CREDITLEDGER_STRIPE_SECRET_KEY and "
                "CREDITLEDGER_STRIPE_WEBHOOK_SECRET."
            )
        return StripeProvider(
            settings.stripe_secret_key,
            settings.stripe_webhook_secret,
            settings.public_base_url,
            api_base=settings.stripe_api_base,
            tolerance=tolerance,
        )
    secret = settings.sandbox_webhook_secret or StoredSecret(
        engine, SANDBOX_SECRET_NAME, lambda: random_secret("whsec_sb_")
    )
    delivery = HttpDelivery(f"{settings.public_base_url}/v1/webhooks/sandbox", secret)
    return SandboxProvider(
        secret,
        settings.public_base_url,
        delivery,
        clock.now,
        store=SqlSandboxStore(engine),
        tolerance=tolerance,
    )


def build_context(
    settings: Settings | None = None,
    clock: Clock | None = None,
    payments: PaymentProvider | None = None,
) -> Context:
    settings = settings or Settings()
    clock = clock or SystemClock()
    engine = create_engine(settings.database_url)
    return Context(
        uow=SqlUnitOfWorkFactory(engine),
        clock=clock,
        passwords=Argon2Passwords(settings.password_time_cost, settings.password_memory_kib),
        settings=settings,
        invariants=SqlInvariants(engine, timedelta(seconds=settings.late_arrival_window_seconds)),
        schema=SqlSchemaStatus(engine),
        rate_limiter=LimitsRateLimiter(settings.redis_url),
        request_limiter=LimitsRateLimiter(settings.redis_url, counter=True)
        if settings.redis_url
        else SlidingWindowCounter(),
        notifier=StandardWebhooks(settings.notify_allow_private_urls),
        holds=RedisHoldBook(settings.redis_url) if settings.redis_url else MemoryHoldBook(),
        payments=payments or build_payment_provider(settings, clock, engine),
        cursor_secret=StoredSecret(engine, CURSOR_SECRET_NAME, random_secret),
    )


def change_feed(settings: Settings) -> Callable[[Callable[[str], None]], ChangeFeed] | None:
    """How a process hears of committed changes, when enabled
    (``CREDITLEDGER_PUSH_CHANGES``): PostgreSQL's notices, or SQLite's data version
    read by the decisions themselves (a database file only)."""
    url = settings.database_url
    if not settings.push_changes:
        return None
    if url.startswith("postgresql"):
        return lambda on_change: PgChangeFeed(url, on_change)
    path = _sqlite_file(url)
    if path is None:
        return None
    return lambda on_change: SqliteChangeFeed(path, on_change)


def _sqlite_file(url: str) -> str | None:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def change_counter(settings: Settings) -> ChangeCounter | None:
    """How a process tells that nothing was committed since it last read: SQLite's
    data version, for a database file; None otherwise."""
    path = _sqlite_file(settings.database_url)
    return None if path is None else SqliteChangeCounter(path)


def migrate_database(settings: Settings) -> None:
    from creditledger.adapters.db.migrate import upgrade

    engine = create_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
