"""What every use case receives: the unit of work, the clock and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from creditledger.config import Settings
from creditledger.domain.clock import Clock
from creditledger.services.ports import (
    Invariants,
    PasswordHasher,
    RateLimiter,
    SchemaStatus,
    UnitOfWorkFactory,
)


@dataclass(frozen=True)
class Context:
    uow: UnitOfWorkFactory
    clock: Clock
    passwords: PasswordHasher
    settings: Settings
    invariants: Invariants
    schema: SchemaStatus
    rate_limiter: RateLimiter
