"""The in-process sliding window counter: exact within a first window, the previous
window's share after it, what it says to wait, bounded memory, and the same answers as
the ``limits`` library's sliding window counter for the same hits."""

from __future__ import annotations

import pytest
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from creditledger.adapters.ratelimit import window
from creditledger.adapters.ratelimit.window import SlidingWindowCounter


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def test_a_first_window_allows_exactly_the_limit() -> None:
    counter = SlidingWindowCounter(Clock(6_000.0))
    assert [counter.hit("t", 20, 60) for _ in range(21)] == [True] * 20 + [False]
    assert counter.test("other", 20, 60)


def test_the_previous_window_counts_by_the_share_still_covered() -> None:
    clock = Clock(6_000.0)  # the start of a window
    counter = SlidingWindowCounter(clock)
    assert all(counter.hit("t", 10, 60) for _ in range(10))
    clock.at = 6_060.0 + 30  # halfway into the next window: 10 × ½ = 5 still count
    assert [counter.hit("t", 10, 60) for _ in range(6)] == [True] * 5 + [False]
    clock.at = 6_060.0 + 120  # two windows later: nothing counts
    assert all(counter.hit("t", 10, 60) for _ in range(10))


def test_retry_after_is_when_one_more_hit_is_allowed() -> None:
    clock = Clock(6_000.0)
    counter = SlidingWindowCounter(clock)
    for _ in range(10):
        counter.hit("t", 10, 60)
    assert counter.retry_after("t", 10, 60) == 60  # the window's end: then 10 × (1 − ε) < 10
    clock.at += 60.5
    assert counter.retry_after("t", 10, 60) == 0 and counter.hit("t", 10, 60)
    assert counter.retry_after("fresh", 10, 60) == 0


def test_idle_keys_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(window, "SWEEP_EVERY", 100)
    clock = Clock(6_000.0)
    counter = SlidingWindowCounter(clock)
    for n in range(99):
        counter.hit(f"team-{n}", 5, 60)
    clock.at += 180
    counter.hit("late", 5, 60)  # the 100th hit sweeps the keys idle for two windows
    assert list(counter._windows) == ["late"]


@pytest.mark.parametrize("pattern", [(0, 7, 30, 12, 45), (0, 10, 59, 10, 61), (5, 3, 80, 9, 95)])
def test_the_same_answers_as_the_library_s_sliding_window_counter(
    pattern: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hits at the offsets and counts of ``pattern`` (offset, hits, offset, hits, probe)."""
    base = 60_000.0
    clock = Clock(base)
    ours = SlidingWindowCounter(clock)
    library = SlidingWindowCounterRateLimiter(MemoryStorage())
    item = RateLimitItemPerSecond(10, 60)
    monkeypatch.setattr("time.time", clock)
    first_at, first, second_at, second, probe = pattern
    answers: list[tuple[bool, bool]] = []
    for offset, count in ((first_at, first), (second_at, second)):
        clock.at = base + offset
        for _ in range(count):
            answers.append((ours.hit("t", 10, 60), library.hit(item, "t")))
    clock.at = base + probe
    answers.append((ours.test("t", 10, 60), library.test(item, "t")))
    assert [a for a, _ in answers] == [b for _, b in answers]
