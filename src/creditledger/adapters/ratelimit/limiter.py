"""Rate limits on the ``limits`` library: in memory by default, Redis when configured.

A moving window: "at most N hits in any window of W seconds". With Redis the
counters are shared by every server process.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter


class LimitsRateLimiter:
    def __init__(self, redis_url: str | None = None, namespace: str = "creditledger") -> None:
        storage: Storage = (
            RedisStorage(redis_url, key_prefix=namespace) if redis_url else MemoryStorage()
        )
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one hit; False when it goes over the limit (and is then not counted)."""
        return bool(self._limiter.hit(RateLimitItemPerSecond(limit, window_seconds), key))

    def test(self, key: str, limit: int, window_seconds: int) -> bool:
        """Would one more hit be allowed? Counts nothing."""
        return bool(self._limiter.test(RateLimitItemPerSecond(limit, window_seconds), key))

    def retry_after(self, key: str, limit: int, window_seconds: int) -> int:
        """Whole seconds until one more hit would be allowed (0 when it already would)."""
        reset_at, remaining = self._limiter.get_window_stats(
            RateLimitItemPerSecond(limit, window_seconds), key
        )
        if remaining > 0:
            return 0
        return max(1, math.ceil(reset_at - time.time()))

    def clear(self) -> None:
        self._storage.reset()
