"""Usage taken from a stream (``creditledger consume``): the same charge as
``POST /v1/usage-events``, a fetched batch at a time (docs/decisions/0025).

A batch is charged in one transaction by ``services.usage.ingest_together``; only after
its commit are its refused messages kept with their codes and the batch acknowledged.
A batch lost before its acknowledgement (a killed worker, a lost ack, a stream that
went away) is delivered again, and the database settles it: every event already charged
is a duplicate, so nothing is charged twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.errors import CreditLedgerError, EventError, ServiceUnavailable
from creditledger.domain.intake import Delivery, IntakeNames, Rejected, check_message
from creditledger.domain.usage import MAX_EVENTS_PER_BATCH
from creditledger.services.context import Context
from creditledger.services.ports import UsageIntake
from creditledger.services.recharge import recharge_after_usage
from creditledger.services.usage import ingest_together

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 2.0
"""How long a batch whose charge failed (the database did not answer) waits to come
again, and how long the worker pauses before fetching more."""


def intake_principal(name: str = "intake") -> Principal:
    """The platform service that a consume worker acts as.

    The gateways authenticate to NATS, whose permissions decide who may publish on the
    usage subjects; a message on them is reported usage, as a service token's POST is.
    No token is looked up: ``token_id`` (``system:<name>``) never matches a stored one.
    """
    return Principal(TokenKind.SERVICE, f"system:{name}", name=name, client="nats")


@dataclass(slots=True)
class BatchReport:
    """What one fetched batch came to."""

    fetched: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    redelivered: int = 0
    """Messages of the batch that had been delivered before."""
    lag: int = 0
    """Messages still waiting in the stream after this batch."""
    charged_teams: set[str] = field(default_factory=set)
    recharging: set[str] = field(default_factory=set)
    """The charged teams with auto-recharge on."""
    seconds: float = 0.0
    failed: str | None = None
    """Why the batch was not charged (it comes again); None when it was."""


def charge_deliveries(
    ctx: Context, names: IntakeNames, deliveries: Sequence[Delivery], principal: Principal
) -> BatchReport:
    """Charge a batch of messages in one transaction; refuse the ones that are not usage
    events. Raises (nothing stored) when the transaction fails."""
    report = BatchReport(fetched=len(deliveries))
    events: list[object] = []
    carried: list[Delivery] = []
    for delivery in deliveries:
        try:
            raw = orjson.loads(delivery.data)
            check_message(names.team_of(delivery.subject), delivery.msg_id, raw)
        except orjson.JSONDecodeError:
            report.rejected.append(
                Rejected(delivery, "invalid_event", "The message body is not JSON.")
            )
            continue
        except EventError as exc:
            report.rejected.append(Rejected(delivery, exc.code, exc.message))
            continue
        events.append(raw)
        carried.append(delivery)
    for start in range(0, len(events), MAX_EVENTS_PER_BATCH):
        chunk = events[start : start + MAX_EVENTS_PER_BATCH]
        (outcome,) = ingest_together(ctx, [(principal, chunk)])
        if isinstance(outcome, CreditLedgerError):
            raise outcome
        report.accepted += outcome.accepted
        report.duplicates += outcome.duplicates
        report.charged_teams |= outcome.charged_teams
        report.recharging |= outcome.recharging
        report.rejected += [
            Rejected(carried[start + r.index], r.code, r.message) for r in outcome.rejected
        ]
    report.redelivered = sum(1 for d in deliveries if d.delivered > 1)
    report.lag = deliveries[-1].pending if deliveries else 0
    return report


def take_batch(
    ctx: Context,
    source: UsageIntake,
    names: IntakeNames,
    principal: Principal,
    max_messages: int,
    wait_seconds: float,
) -> BatchReport | None:
    """Fetch one batch, charge it, keep its rejects, acknowledge it. None when the
    stream had nothing within ``wait_seconds``."""
    deliveries = source.fetch(max_messages, wait_seconds)
    if not deliveries:
        return None
    started = time.perf_counter()
    try:
        report = charge_deliveries(ctx, names, deliveries, principal)
    except ServiceUnavailable as exc:
        source.retry_later(deliveries, RETRY_DELAY_SECONDS)
        return BatchReport(fetched=len(deliveries), failed=exc.message)
    # Committed: from here on, a failure only means the batch comes again, which the
    # database answers with duplicates.
    source.reject(report.rejected)
    source.ack(deliveries)
    report.seconds = time.perf_counter() - started
    recharge_after_usage(ctx, report.recharging)
    return report


def consume(
    ctx: Context,
    source: UsageIntake,
    names: IntakeNames,
    *,
    stop: Callable[[], bool],
    observe: Callable[[BatchReport | None], None] = lambda _: None,
    max_messages: int = 1_000,
    wait_seconds: float = 1.0,
) -> None:
    """Take batches until ``stop()`` holds; it is asked between batches, so a batch
    begun is charged and acknowledged first. A stream or database that does not answer
    is waited for."""
    principal = intake_principal()
    while not stop():
        try:
            report = take_batch(ctx, source, names, principal, max_messages, wait_seconds)
        except ServiceUnavailable as exc:
            log.warning("usage intake paused: %s", exc.message)
            observe(BatchReport(failed=exc.message))
            _pause(stop, RETRY_DELAY_SECONDS)
            continue
        observe(report)
        if report is not None and report.failed is not None:
            log.warning("usage batch of %d not charged: %s", report.fetched, report.failed)
            _pause(stop, RETRY_DELAY_SECONDS)


def _pause(stop: Callable[[], bool], seconds: float) -> None:
    until = time.monotonic() + seconds
    while not stop() and time.monotonic() < until:
        time.sleep(0.05)
