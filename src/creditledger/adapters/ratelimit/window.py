"""A sliding window counter in this process's memory: a tier's requests per minute.

The same approximation as the ``limits`` library's sliding window counter (which counts
in Redis when ``CREDITLEDGER_REDIS_URL`` is set): the current window's hits plus the
previous window's, weighted by how much of the previous window the sliding one still
covers. It is here because it is asked on every authorization: the library's memory
storage restarts an expiry timer thread every 10 ms that walks every key, which cost
5 µs at the median and 25 µs at the 99th percentile of a 10 µs decision
(docs/decisions/0019). Two numbers per key, one lock, and a sweep of idle keys now and
then keep this one at about a microsecond.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

SWEEP_EVERY = 10_000
"""Hits between two sweeps of the keys idle for two windows (bounded memory)."""


class SlidingWindowCounter:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._windows: dict[str, list[int]] = {}
        """key → [window number, hits in it, hits in the window before, window length]."""
        self._since_sweep = 0

    def _weighted(self, key: str, window_seconds: int, now: float) -> tuple[list[int], float]:
        """The key's counts brought to ``now``, and the sliding window's weighted count."""
        number = int(now // window_seconds)
        counts = self._windows.get(key)
        if counts is None:
            counts = self._windows[key] = [number, 0, 0, window_seconds]
        elif counts[0] != number:
            previous = counts[1] if counts[0] == number - 1 else 0
            counts[0], counts[1], counts[2] = number, 0, previous
        # The share of the previous window still covered, in the library's arithmetic,
        # so both give the same answer to the last bit.
        covered = 1.0 - ((now - window_seconds) / window_seconds) % 1.0
        return counts, counts[2] * covered + counts[1]

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one hit; False when it would go over the limit (and is then not counted)."""
        now = self._now()
        with self._lock:
            self._since_sweep += 1
            if self._since_sweep >= SWEEP_EVERY:
                self._sweep(now)
            counts, weighted = self._weighted(key, window_seconds, now)
            if weighted >= limit:  # as the library: floor(weighted) + 1 > limit
                return False
            counts[1] += 1
            return True

    def test(self, key: str, limit: int, window_seconds: int) -> bool:
        """Would one more hit be allowed? Counts nothing."""
        with self._lock:
            return self._weighted(key, window_seconds, self._now())[1] < limit

    def retry_after(self, key: str, limit: int, window_seconds: int) -> int:
        """Whole seconds until one more hit would be allowed (0 when it already would)."""
        now = self._now()
        with self._lock:
            counts, weighted = self._weighted(key, window_seconds, now)
            if weighted < limit:
                return 0
            window_end = (counts[0] + 1) * window_seconds
            if counts[1] >= limit:
                # Not before this window is the previous one, and then only its share.
                needed = 1.0 - limit / counts[1]
                return max(1, math.ceil(window_end - now + needed * window_seconds))
            # previous × (1 − elapsed) + current < limit, solved for elapsed.
            elapsed = 1.0 - (limit - counts[1]) / counts[2]
            start = counts[0] * window_seconds
            return max(1, math.ceil(start + elapsed * window_seconds - now))

    def _sweep(self, now: float) -> None:
        idle = [k for k, c in self._windows.items() if c[0] < int(now // c[3]) - 1]
        for key in idle:
            del self._windows[key]
        self._since_sweep = 0

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()
