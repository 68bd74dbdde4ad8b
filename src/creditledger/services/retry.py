"""Bounded retry of a whole unit of work on transient database failures.

A serialization failure, a deadlock or a dropped connection rolls the transaction
back completely, so running the same use case again applies its effect once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from creditledger.domain.errors import ServiceUnavailable

T = TypeVar("T")
ATTEMPTS = 3


def with_retry(work: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run ``work``; on :class:`ServiceUnavailable` run it again, up to ``attempts`` times."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except ServiceUnavailable:
            if attempt == attempts:
                raise
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")
