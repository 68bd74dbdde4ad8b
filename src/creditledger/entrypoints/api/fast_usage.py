"""``POST /v1/usage-events`` in front of the framework, for the small batches.

A gateway that reports each request's usage as it ends sends many small POSTs; for
them the framework's routing, dependencies and middleware cost more than charging the
events in a shared group commit. This path takes a plain request (``front.bearer_json``)
with a body up to ``DECODE_ON_LOOP_BYTES``, decodes it with the one JSON decoder every
route uses, and hands it to the same :class:`~.group_commit.GroupCommit` as the route.
A body the route would refuse (not JSON, a key twice, another field) and every larger
batch go to the route in ``routes/usage.py`` unchanged. The answer is the route's
``UsageBatchResult``; the auto-recharge check follows the answer, as the route's
background task does.
"""

from __future__ import annotations

import logging

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from creditledger.domain.errors import CreditLedgerError
from creditledger.entrypoints.api.deps import client_of
from creditledger.entrypoints.api.front import PostInFront, answer
from creditledger.entrypoints.api.group_commit import GroupCommit, Written
from creditledger.entrypoints.api.json_body import decode_json, usage_events
from creditledger.entrypoints.api.limits import DECODE_ON_LOOP_BYTES
from creditledger.entrypoints.api.schemas import usage_batch_result
from creditledger.services.context import Context
from creditledger.services.recharge import recharge_after_usage

log = logging.getLogger(__name__)

PATH = "/v1/usage-events"


class UsageFastPath(PostInFront[list[object]]):
    """Answers the plain small usage POSTs itself and hands every other request to
    ``app``."""

    path = PATH
    max_bytes = DECODE_ON_LOOP_BYTES

    def __init__(self, app: ASGIApp, ctx: Context, groups: GroupCommit) -> None:
        super().__init__(app)
        self.ctx = ctx
        self.groups = groups

    def decode(self, body: bytes) -> list[object] | None:
        return _events(body)

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, token: str, decoded: list[object]
    ) -> None:
        written: list[Written] = []
        await answer(scope, receive, send, PATH, self._charge(scope, token, decoded, written))
        if written and written[0].top_up:  # after the answer, as the route's background task
            try:
                await run_in_threadpool(recharge_after_usage, self.ctx, written[0].top_up)
            except Exception:
                log.exception("auto-recharge after usage failed")

    async def _charge(
        self, scope: Scope, token: str, events: list[object], written: list[Written]
    ) -> bytes:
        done = await self.groups.ingest(token, client_of(scope), events)
        written.append(done)
        return orjson.dumps(usage_batch_result(done.result).model_dump(mode="json"))


def _events(body: bytes) -> list[object] | None:
    """The events of a body that the route would take; None for one it would refuse
    (it then says why) or that is not a list of events."""
    try:
        events = usage_events(decode_json(body))
    except CreditLedgerError:
        return None
    return events if isinstance(events, list) else None
