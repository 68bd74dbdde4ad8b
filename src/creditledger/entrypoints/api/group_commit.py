"""Group commit of small usage batches: concurrent POSTs share one transaction.

A gateway that reports each request's usage as it ends sends many one-event POSTs at
once; each costing its own transaction and commit (a dozen round trips and a disk flush)
caps them far below what the database can take. Here a POST of a small batch joins the
group being gathered; while a group is written, the next gathers behind it, and is
written at once by a second writer (``WRITERS``), so one group's statements run while
the other waits on its commit's flush; a third waits for a free writer. Nobody waits
when the server is idle (a lone POST is a group of one), and under load each commit
carries everything that arrived meanwhile. Every POST is answered only after the
commit that stored it, with its own part of the result; if the group's transaction
fails, every member gets that failure and none of them was stored
(``services.usage.ingest_together``).

A larger batch is charged on its own, one at a time in a process (``BATCH_TURNS``).
Its work is mostly Python, and the threads of a process share one interpreter lock:
two batches in one process only take turns at the interpreter, and when they touch the
same teams, one waits on the database for the team locks the other holds while it
computes. A batch waiting for its turn waits on the event loop, holding no thread, no
connection and no lock (docs/decisions/0036). Its events are checked and parsed before
it waits, while the batch whose turn it is waits on the database.

Like PostgreSQL's ``commit_delay``, a group may wait a moment for company: when the
recent groups show that more callers than are waiting now keep coming back (each
answered caller sends its next event), the writer waits up to ``GATHER_SECONDS`` for
them. Each commit then carries all of them instead of the group alternating between a
few and the rest, which halves the transactions per event; a caller alone never waits.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from creditledger.domain.accounts import Principal
from creditledger.domain.errors import CreditLedgerError
from creditledger.domain.usage import MAX_EVENTS_PER_BATCH
from creditledger.entrypoints.api.deps import principal_of
from creditledger.services.authorize import Authorizer
from creditledger.services.context import Context
from creditledger.services.usage import IngestResult, charge_read, ingest_together, read_batch

SMALL_BATCH = 100
"""Batches of at most this many events are grouped; larger ones are a group each."""

GATHER_SECONDS = 0.002
"""How long a group may wait for the callers the recent groups say are coming."""

WRITERS = 2
"""Groups written at once by one process: while one waits on its commit, the next is
written (their team locks are taken in id order, so two groups never deadlock)."""

BATCH_TURNS = 1
"""Larger batches charged at once by one process."""

RECENT_GROUPS = 16
"""How many groups' sizes tell how many callers to expect."""


@dataclass(slots=True)
class _Member:
    principal: Principal
    events: list[object]
    answer: asyncio.Future[Written]


@dataclass(frozen=True, slots=True)
class Written:
    result: IngestResult
    """This batch's part of the group's result."""
    top_up: set[str]
    """The teams whose auto-recharge to check after the answer: the whole group's charged
    teams with auto-recharge on, on one member of the group, none on the others (one
    check per commit, none when no charged team recharges)."""


class GroupCommit:
    def __init__(
        self, ctx: Context, authorizer: Authorizer, max_events: int = MAX_EVENTS_PER_BATCH
    ) -> None:
        self.ctx = ctx
        self.authorizer = authorizer
        self.max_events = max_events
        self._waiting: list[_Member] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._recent: deque[int] = deque(maxlen=RECENT_GROUPS)
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._turns = weakref.WeakKeyDictionary()
        """Per event loop (a test client may run one after another), the larger batches'
        turns."""
        self._arrivals: list[asyncio.Future[None]] = []
        """What gathering writers wait on: told when a caller joins (futures of the
        running loop, so the group works on whichever loop serves it)."""
        self._threads: ThreadPoolExecutor | None = None
        """The groups' transactions run in threads of their own: handing a group to one
        and its outcome back costs less than through the server's shared pool (anyio's
        limiter and cancel scopes), and a group never waits behind other blocking calls
        for a thread. Made when first needed, again after :meth:`close`."""

    def close(self) -> None:
        """Let the writers' threads go once their groups are written."""
        threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=False)

    def _writer_threads(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(WRITERS, thread_name_prefix="group-writer")
        return self._threads

    async def ingest(self, token: str | None, client: str | None, events: object) -> Written:
        """The batch's result once the commit that stored it is done: in a group when
        it is small, on its own otherwise. The gateway's token is known from memory when
        the authorizer has it (no read, no thread)."""
        principal = await principal_of(self.authorizer, token, client)
        if not isinstance(events, list) or len(events) > SMALL_BATCH:
            read = await run_in_threadpool(read_batch, self.ctx, principal, events)
            async with self._turn():
                result = await run_in_threadpool(charge_read, self.ctx, read)
            return Written(result, set(result.recharging))
        member = _Member(principal, events, asyncio.get_running_loop().create_future())
        self._waiting.append(member)
        for arrival in self._arrivals:
            if not arrival.done():
                arrival.set_result(None)
        self._arrivals.clear()
        if len(self._writers) < WRITERS:
            writer = asyncio.create_task(self._write())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await member.answer

    def _turn(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = asyncio.Semaphore(BATCH_TURNS)
        return turn

    def _next_group(self) -> list[_Member]:
        group: list[_Member] = []
        size = 0
        while self._waiting and (
            not group or size + len(self._waiting[0].events) <= self.max_events
        ):
            member = self._waiting.pop(0)
            group.append(member)
            size += len(member.events)
        return group

    def _expected(self) -> int:
        """How many callers a group should wait for: as many as the largest recent group
        (members, not events), and never more than fit in a group."""
        return min(max(self._recent, default=1), self.max_events)

    async def _gather(self) -> None:
        """Wait up to ``GATHER_SECONDS`` while fewer callers wait than recently came."""
        expected = self._expected()
        if len(self._waiting) >= expected:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GATHER_SECONDS
        while len(self._waiting) < expected:
            left = deadline - loop.time()
            if left <= 0:
                return
            arrival = loop.create_future()
            self._arrivals.append(arrival)
            try:
                await asyncio.wait_for(arrival, left)
            except TimeoutError:
                return

    async def _write(self) -> None:
        """Write groups while callers wait. A writer leaves ``_writers`` the moment it
        finds nobody waiting: a caller arriving then starts a writer of its own (a
        finished task would leave the set only when its done callbacks run, after that
        caller, who would wait for a writer that is gone)."""
        try:
            await self._write_groups()
        finally:
            writer = asyncio.current_task()
            if writer is not None:
                self._writers.discard(writer)

    async def _write_groups(self) -> None:
        while self._waiting:
            await self._gather()
            group = self._next_group()
            if not group:
                break  # while it gathered, another writer took every waiting caller
            self._recent.append(len(group))
            batches = [(m.principal, m.events) for m in group]
            try:
                outcomes = await asyncio.get_running_loop().run_in_executor(
                    self._writer_threads(), ingest_together, self.ctx, batches
                )
            except Exception as exc:  # the group's transaction: each member is told
                for member in group:
                    if not member.answer.done():
                        member.answer.set_exception(exc)
                continue
            charged = {t for o in outcomes if isinstance(o, IngestResult) for t in o.recharging}
            for member, outcome in zip(group, outcomes, strict=True):
                if member.answer.done():
                    continue  # its caller went away; it is stored all the same
                if isinstance(outcome, CreditLedgerError):
                    member.answer.set_exception(outcome)
                else:
                    member.answer.set_result(Written(outcome, charged))
                    charged = set()
