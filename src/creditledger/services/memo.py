"""Bounded memos: the dictionaries in which the hot paths keep what they worked out (a
token's principal, a decision, a decoded body, an encoded answer)."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def keep(memo: dict[K, V], key: K, value: V, limit: int) -> V:
    """Keep ``value`` under ``key`` and return it. A memo holding ``limit`` entries is
    emptied first: what it held is worked out again when next asked for, which costs
    less on every hit than keeping track of what was used last."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value
