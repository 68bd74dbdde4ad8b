"""run_idempotent: replay, reuse, release on refusal, takeover of a crashed claim, expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from creditledger.adapters.clock import FixedClock
from creditledger.domain.errors import IdempotencyKeyReused, InvalidRequest, RequestInProgress
from creditledger.services.context import Context
from creditledger.services.idempotency import STALE_CLAIM, run_idempotent
from creditledger.services.ports import UnitOfWork

Effect = Callable[[UnitOfWork], int]


class Counter:
    """An effect that counts its runs; it can be told to fail."""

    def __init__(self) -> None:
        self.runs = 0
        self.fail_with: Exception | None = None

    def __call__(self, uow: UnitOfWork) -> int:
        self.runs += 1
        if self.fail_with is not None:
            raise self.fail_with
        return self.runs


def run(ctx: Context, effect: Effect, key: str = "k", fingerprint: str = "f") -> tuple[int, str]:
    return run_idempotent(ctx, "tok_caller", key, fingerprint, effect, lambda n: (201, f"run {n}"))


def test_the_same_key_and_fingerprint_replay_the_stored_answer(ctx: Context) -> None:
    effect = Counter()
    assert run(ctx, effect) == (201, "run 1")
    assert run(ctx, effect) == (201, "run 1")
    assert effect.runs == 1


def test_the_same_key_with_another_fingerprint_is_refused(ctx: Context) -> None:
    effect = Counter()
    run(ctx, effect)
    with pytest.raises(IdempotencyKeyReused):
        run(ctx, effect, fingerprint="other")
    assert effect.runs == 1


def test_keys_are_scoped_to_their_caller(ctx: Context) -> None:
    effect = Counter()
    run(ctx, effect)
    other = run_idempotent(ctx, "tok_someone_else", "k", "f", effect, lambda n: (201, str(n)))
    assert other == (201, "2")


def test_a_refused_request_releases_its_key(ctx: Context) -> None:
    effect = Counter()
    effect.fail_with = InvalidRequest("no", param="x")
    with pytest.raises(InvalidRequest):
        run(ctx, effect)
    effect.fail_with = None
    assert run(ctx, effect, fingerprint="corrected") == (201, "run 2")


def test_a_claim_left_by_a_crash_is_taken_over_after_a_minute(
    ctx: Context, clock: FixedClock
) -> None:
    effect = Counter()
    effect.fail_with = RuntimeError("the process died")
    with pytest.raises(RuntimeError):
        run(ctx, effect)
    effect.fail_with = None
    with pytest.raises(RequestInProgress):
        run(ctx, effect)
    clock.advance(STALE_CLAIM - timedelta(seconds=1))
    with pytest.raises(RequestInProgress):
        run(ctx, effect)
    clock.advance(timedelta(seconds=2))
    assert run(ctx, effect) == (201, "run 2")
    assert run(ctx, effect) == (201, "run 2")


def test_a_crashed_claim_is_not_taken_over_by_another_body(ctx: Context, clock: FixedClock) -> None:
    effect = Counter()
    effect.fail_with = RuntimeError("the process died")
    with pytest.raises(RuntimeError):
        run(ctx, effect)
    clock.advance(STALE_CLAIM * 2)
    effect.fail_with = None
    with pytest.raises(IdempotencyKeyReused):
        run(ctx, effect, fingerprint="other")


def test_an_answer_is_replayed_for_24_hours_then_forgotten(ctx: Context, clock: FixedClock) -> None:
    effect = Counter()
    run(ctx, effect)
    clock.advance(timedelta(hours=24) - timedelta(seconds=1))
    assert run(ctx, effect) == (201, "run 1")
    clock.advance(timedelta(seconds=1))
    assert run(ctx, effect) == (201, "run 2")
