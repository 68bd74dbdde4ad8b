"""The composition root: builds the engine and hands real adapters to the services."""

from __future__ import annotations

from creditledger.adapters.clock import SystemClock
from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.db.invariants import SqlInvariants
from creditledger.adapters.db.migrate import SqlSchemaStatus
from creditledger.adapters.db.uow import SqlUnitOfWorkFactory
from creditledger.adapters.passwords import Argon2Passwords
from creditledger.adapters.ratelimit.limiter import LimitsRateLimiter
from creditledger.config import Settings
from creditledger.domain.clock import Clock
from creditledger.services.context import Context


def build_context(settings: Settings | None = None, clock: Clock | None = None) -> Context:
    settings = settings or Settings()
    engine = create_engine(settings.database_url)
    return Context(
        uow=SqlUnitOfWorkFactory(engine),
        clock=clock or SystemClock(),
        passwords=Argon2Passwords(settings.password_time_cost, settings.password_memory_kib),
        settings=settings,
        invariants=SqlInvariants(engine),
        schema=SqlSchemaStatus(engine),
        rate_limiter=LimitsRateLimiter(settings.redis_url),
    )


def migrate_database(settings: Settings) -> None:
    from creditledger.adapters.db.migrate import upgrade

    engine = create_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
