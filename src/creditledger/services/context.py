"""What every use case receives: the unit of work, the clock, the settings and the
outside services (payment provider, rate limiter)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from creditledger.config import Settings
from creditledger.domain.clock import Clock
from creditledger.domain.cursors import CursorCodec, codec_for
from creditledger.services.ports import (
    HoldBook,
    Invariants,
    NoticeSender,
    PasswordHasher,
    PaymentProvider,
    RateLimiter,
    SchemaStatus,
    UnitOfWorkFactory,
)
from creditledger.services.price_books import PriceBooks


@dataclass(frozen=True)
class Context:
    uow: UnitOfWorkFactory
    clock: Clock
    passwords: PasswordHasher
    settings: Settings
    invariants: Invariants
    schema: SchemaStatus
    rate_limiter: RateLimiter
    """Throttles of failed attempts: an exact moving window."""
    payments: PaymentProvider
    holds: HoldBook
    notifier: NoticeSender = field(kw_only=True)
    """Delivers notices to teams' webhooks."""
    request_limiter: RateLimiter = field(kw_only=True)
    """A tier's requests per minute at authorization: a sliding window counter."""
    price_books: PriceBooks = field(default_factory=PriceBooks, kw_only=True)
    """This process's copy of the price book versions (usage pricing, authorization)."""
    cursor_secret: Callable[[], str] = field(kw_only=True)
    """The database's secret that page cursors are sealed with (``domain.cursors``)."""

    def cursors(self) -> CursorCodec:
        """The codec of this deployment's page cursors."""
        return codec_for(self.cursor_secret())
