"""How the group commit forms its groups: a caller alone is written at once; when the
recent groups say more callers keep coming, a group waits (a bounded moment) for them;
two groups may be written at once. The transaction itself is replaced by a recorder."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from creditledger.entrypoints.api import group_commit
from creditledger.entrypoints.api.group_commit import GroupCommit
from creditledger.services.usage import IngestResult


class Recorder:
    def __init__(self) -> None:
        self.groups: list[int] = []
        self.release = threading.Event()
        self.release.set()
        self.writing = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, _ctx: Any, batches: Sequence[tuple[Any, object]]) -> list[IngestResult]:
        with self._lock:
            self.groups.append(len(batches))
            self.writing += 1
            self.most_at_once = max(self.most_at_once, self.writing)
        self.release.wait(5)
        with self._lock:
            self.writing -= 1
        return [IngestResult(accepted=1) for _ in batches]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()

    async def principal(*_: object) -> object:
        return object()

    monkeypatch.setattr(group_commit, "ingest_together", recorder)
    monkeypatch.setattr(group_commit, "principal_of", principal)
    return recorder


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run on a loop of its own in a thread of its own: a test before this one in the
    same worker may have left a loop running on this thread (the browser tests do)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def _groups() -> GroupCommit:
    return GroupCommit(ctx=None, authorizer=None)  # type: ignore[arg-type]


def test_a_caller_alone_is_written_at_once(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "GATHER_SECONDS", 30.0)

    async def run() -> None:
        groups = _groups()
        done = await asyncio.wait_for(groups.ingest("t", None, [{}]), 10)
        assert done.result.accepted == 1

    _run(run())
    assert recorder.groups == [1]


def test_a_group_waits_for_the_callers_recent_groups_say_are_coming(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "GATHER_SECONDS", 30.0)

    async def run() -> None:
        groups = _groups()
        await asyncio.gather(*(groups.ingest("t", None, [{}]) for _ in range(3)))
        assert recorder.groups == [3]
        first = asyncio.create_task(groups.ingest("t", None, [{}]))
        await asyncio.sleep(0.05)  # the first waits: three came last time
        assert recorder.groups == [3]
        rest = [groups.ingest("t", None, [{}]) for _ in range(2)]
        await asyncio.wait_for(asyncio.gather(first, *rest), 10)  # not the 30 s bound

    _run(run())
    assert recorder.groups == [3, 3]


def test_a_group_waits_no_longer_than_the_gathering_bound(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "GATHER_SECONDS", 0.05)

    async def run() -> None:
        groups = _groups()
        await asyncio.gather(*(groups.ingest("t", None, [{}]) for _ in range(4)))
        await asyncio.wait_for(groups.ingest("t", None, [{}]), 10)  # alone, after the bound

    _run(run())
    assert recorder.groups == [4, 1]


def test_two_groups_are_written_at_once_and_no_more(recorder: Recorder) -> None:
    recorder.release.clear()

    async def run() -> None:
        groups = _groups()
        first = asyncio.create_task(groups.ingest("t", None, [{}]))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(groups.ingest("t", None, [{}]))
        await asyncio.sleep(0.05)
        third = asyncio.create_task(groups.ingest("t", None, [{}]))
        await asyncio.sleep(0.05)
        assert recorder.groups == [1, 1]  # the third waits for a free writer
        recorder.release.set()
        await asyncio.wait_for(asyncio.gather(first, second, third), 10)

    _run(run())
    assert recorder.most_at_once == group_commit.WRITERS == 2
    assert sum(recorder.groups) == 3
