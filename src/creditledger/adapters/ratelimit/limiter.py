"""Rate limits on the ``limits`` library: in memory by default, Redis when configured.

Two strategies of that library. The throttles of failed guesses count in a moving
window: "at most N hits in any window of W seconds", exactly, one timestamp kept per
hit. A tier's requests per minute, checked on every authorization, count in a sliding
window counter: two counters per key, the previous window's weighted by how much of
it the current window still covers (docs/decisions/0019); a moving window of a
50,000-requests-per-minute tier would keep 50,000 timestamps per team and rewrite
them every few milliseconds. With Redis the counters are shared by every server
process. When Redis does not answer, each
process counts in its own memory until it does again: limits stay enforced per
process, and authorization keeps answering instead of failing every request.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")


@functools.lru_cache(maxsize=256)
def _item(limit: int, window_seconds: int) -> RateLimitItemPerSecond:
    """The library's description of a limit (a few tier and throttle budgets in all)."""
    return RateLimitItemPerSecond(limit, window_seconds)


class LimitsRateLimiter:
    def __init__(
        self,
        redis_url: str | None = None,
        namespace: str = "creditledger",
        *,
        counter: bool = False,
    ) -> None:
        """``counter``: a sliding window counter instead of the exact moving window."""
        strategy: type[RateLimiter] = (
            SlidingWindowCounterRateLimiter if counter else MovingWindowRateLimiter
        )
        storage: Storage = (
            RedisStorage(redis_url, key_prefix=namespace) if redis_url else MemoryStorage()
        )
        self._storage = storage
        self._limiter = strategy(storage)
        self._fallback = strategy(MemoryStorage()) if redis_url else None

    def _run(self, call: Callable[[RateLimiter], T]) -> T:
        try:
            return call(self._limiter)
        except RedisError as exc:
            if self._fallback is None:
                raise
            log.warning("rate limiter: Redis unavailable, counting in this process: %s", exc)
            return call(self._fallback)

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one hit; False when it goes over the limit (and is then not counted)."""
        item = _item(limit, window_seconds)
        return bool(self._run(lambda limiter: limiter.hit(item, key)))

    def test(self, key: str, limit: int, window_seconds: int) -> bool:
        """Would one more hit be allowed? Counts nothing."""
        item = _item(limit, window_seconds)
        return bool(self._run(lambda limiter: limiter.test(item, key)))

    def retry_after(self, key: str, limit: int, window_seconds: int) -> int:
        """Whole seconds until one more hit would be allowed (0 when it already would)."""
        item = _item(limit, window_seconds)
        reset_at, remaining = self._run(lambda limiter: limiter.get_window_stats(item, key))
        if remaining > 0:
            return 0
        return max(1, math.ceil(reset_at - time.time()))

    def clear(self) -> None:
        self._storage.reset()
