"""Publishing usage to the stream as a gateway does (the contract of docs/api.md):
``creditledger publish``, tests, and operators replaying a file of events.

Each event goes on ``<prefix>.events.<team_id>`` with ``Nats-Msg-Id: <team_id>:<id>``;
a publish counts once the stream has acknowledged it. One that fails (no answer, the
stream full) is published again with the same id, which is safe: the stream drops a
repeat within its duplicate window, and the database settles any later one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import orjson
from nats.js.api import PubAck
from nats.js.client import JetStreamContext

from creditledger.adapters.streams.connection import NatsLoop
from creditledger.domain.errors import EventError, InvalidRequest, ServiceUnavailable
from creditledger.domain.intake import IntakeNames, message_id

TIMEOUT_SECONDS = 10.0
ATTEMPTS = 5
IN_FLIGHT = 2_000
"""Publishes awaiting the stream's acknowledgement at once."""


@dataclass(slots=True)
class PublishResult:
    published: int = 0
    """Events the stream acknowledged as new."""
    duplicates: int = 0
    """Events the stream acknowledged as repeats within its duplicate window."""
    retried: int = 0
    """Publishes that had to be sent again (no answer, or the stream refused them)."""
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Outgoing:
    subject: str
    body: bytes
    msg_id: str | None


def outgoing(names: IntakeNames, event: Mapping[str, Any]) -> Outgoing:
    """The message of one usage event. ``InvalidRequest`` for one without a usable
    ``team_id`` or ``id``: it has no subject (the HTTP API would reject it too)."""
    team_id, event_id = event.get("team_id"), event.get("id")
    if not isinstance(team_id, str) or not isinstance(event_id, str):
        raise InvalidRequest("Each event needs a string `team_id` and `id` to be published.")
    try:
        subject = names.subject(team_id)
    except EventError as exc:
        raise InvalidRequest(f"Event {event_id!r}: {exc.message}") from None
    return Outgoing(subject, orjson.dumps(event), message_id(team_id, event_id))


def publish_events(
    url: str, names: IntakeNames, events: Iterable[Mapping[str, Any]]
) -> PublishResult:
    """Publish usage events; returns once the stream has acknowledged every one (or
    raises ``ServiceUnavailable`` after ``ATTEMPTS`` tries of the ones it has not)."""
    messages = [outgoing(names, e) for e in events]
    return publish_messages(url, messages)


def publish_messages(url: str, messages: list[Outgoing]) -> PublishResult:
    """Publish prepared messages (bodies as they are, even ones the consumer will
    refuse: tests and replays of rejected messages use this)."""
    conn = NatsLoop(url, "creditledger publish")
    try:
        return conn.run(_publish_all(conn.nc.jetstream(), messages), 3600.0)
    finally:
        conn.close()


async def _publish_all(js: JetStreamContext, messages: list[Outgoing]) -> PublishResult:
    result = PublishResult()
    pending = messages
    for attempt in range(ATTEMPTS):
        failed: list[Outgoing] = []
        for start in range(0, len(pending), IN_FLIGHT):
            window = pending[start : start + IN_FLIGHT]
            for message, outcome in zip(window, await _publish_window(js, window), strict=True):
                if isinstance(outcome, PubAck):
                    result.duplicates += bool(outcome.duplicate)
                    result.published += not outcome.duplicate
                    continue
                failed.append(message)
                if len(result.errors) < 5:
                    result.errors.append(f"{message.subject}: {outcome}")
        if not failed:
            return result
        result.retried += len(failed)
        pending = failed
        await asyncio.sleep(min(0.25 * 2**attempt, 5.0))
    raise ServiceUnavailable(
        f"{len(pending)} event(s) not acknowledged by the stream after {ATTEMPTS} tries: "
        + "; ".join(result.errors)
    )


async def _publish_window(js: JetStreamContext, window: list[Outgoing]) -> list[PubAck | str]:
    """Publish without waiting in between, then wait for the acknowledgements together
    (a task per publish would cost more than the publish)."""
    futures: list[asyncio.Future[PubAck]] = []
    for message in window:
        headers = {"Nats-Msg-Id": message.msg_id} if message.msg_id else None
        futures.append(await js.publish_async(message.subject, message.body, headers=headers))
    await asyncio.wait(futures, timeout=TIMEOUT_SECONDS)
    outcomes: list[PubAck | str] = []
    for future in futures:
        if not future.done():
            future.cancel()
            outcomes.append("no acknowledgement in time")
        elif future.exception() is not None:
            exc = future.exception()
            if not isinstance(exc, nats.errors.Error):
                raise exc  # type: ignore[misc]
            outcomes.append(str(exc) or type(exc).__name__)
        else:
            outcomes.append(future.result())
    return outcomes
