"""``creditledger consume``: a worker taking usage from the stream until SIGTERM, with
its Prometheus metrics (docs/operations.md, "Usage intake on NATS")."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence

import orjson
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from creditledger.adapters.streams.jetstream import JetStreamIntake
from creditledger.adapters.streams.setup import StreamLimits
from creditledger.config import Settings
from creditledger.domain.errors import InvalidRequest
from creditledger.domain.intake import Delivery, IntakeNames, Rejected
from creditledger.services.context import Context
from creditledger.services.intake import BatchReport, consume

log = logging.getLogger(__name__)

MESSAGES = Counter(
    "creditledger_intake_messages_total",
    "Usage messages taken from the stream, by outcome (accepted, duplicate, rejected)",
    ["outcome"],
)
REJECTS = Counter("creditledger_intake_rejects_total", "Usage messages refused, by code", ["code"])
REDELIVERIES = Counter(
    "creditledger_intake_redeliveries_total",
    "Usage messages delivered more than once (a worker died or an acknowledgement was lost)",
)
FAILED = Counter(
    "creditledger_intake_failed_batches_total",
    "Batches not charged (database or stream unavailable); they come again",
)
LAG = Gauge(
    "creditledger_intake_lag_messages",
    "Usage messages in the stream that no worker has been given yet",
)
IN_FLIGHT = Gauge(
    "creditledger_intake_in_flight_messages",
    "Messages this worker holds: fetched and not yet acknowledged",
)
BATCH_SECONDS = Histogram(
    "creditledger_intake_batch_seconds",
    "From a fetched batch to its acknowledgement",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def intake_names(settings: Settings) -> IntakeNames:
    return IntakeNames(settings.nats_subject_prefix, settings.nats_stream, settings.nats_consumer)


def stream_limits(settings: Settings) -> StreamLimits:
    return StreamLimits(
        replicas=settings.nats_replicas,
        max_bytes=settings.nats_max_bytes,
        max_msgs=settings.nats_max_msgs,
        duplicate_window_seconds=settings.nats_duplicate_window_seconds,
        ack_wait_seconds=settings.nats_ack_wait_seconds,
        max_ack_pending=settings.nats_max_ack_pending,
    )


def nats_url(settings: Settings) -> str:
    if not settings.nats_url:
        raise InvalidRequest(
            "CREDITLEDGER_NATS_URL is not set: usage intake on NATS is off "
            "(usage comes by POST /v1/usage-events)."
        )
    return settings.nats_url


class _Watch:
    """Counts what the fetching, charging and acknowledging go through."""

    def fetched(self, count: int) -> None:
        """``count`` messages held from now on (0 when they are let go)."""
        IN_FLIGHT.set(count)

    def __call__(self, report: BatchReport | None) -> None:
        IN_FLIGHT.set(0)
        if report is None:
            LAG.set(0)
            return
        if report.failed is not None:
            FAILED.inc()
            return
        MESSAGES.labels("accepted").inc(report.accepted)
        MESSAGES.labels("duplicate").inc(report.duplicates)
        MESSAGES.labels("rejected").inc(len(report.rejected))
        for rejected in report.rejected:
            REJECTS.labels(rejected.code).inc()
        REDELIVERIES.inc(report.redelivered)
        LAG.set(report.lag)
        BATCH_SECONDS.observe(report.seconds)


class _Counting:
    """The stream, telling the metrics how many messages this worker holds."""

    def __init__(self, stream: JetStreamIntake, watch: _Watch) -> None:
        self.stream = stream
        self.watch = watch

    def fetch(self, max_messages: int, wait_seconds: float) -> list[Delivery]:
        deliveries = self.stream.fetch(max_messages, wait_seconds)
        self.watch.fetched(len(deliveries))
        return deliveries

    def reject(self, rejected: Sequence[Rejected]) -> None:
        self.stream.reject(rejected)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self.watch.fetched(0)
        self.stream.ack(deliveries)

    def retry_later(self, deliveries: Sequence[Delivery], delay_seconds: float) -> None:
        self.watch.fetched(0)
        self.stream.retry_later(deliveries, delay_seconds)


def run_consumer(
    ctx: Context, batch: int, metrics_port: int | None, metrics_host: str = "127.0.0.1"
) -> None:
    """Take usage until SIGTERM or Ctrl-C: the batch in hand is charged and acknowledged,
    buffered acknowledgements are sent, then the worker exits."""
    settings = ctx.settings
    names = intake_names(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stream = JetStreamIntake(nats_url(settings), names)
    watch = _Watch()
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host)
    log.info("consuming %s from stream %s as %s", names.events, names.stream, names.consumer)
    try:
        consume(
            ctx,
            _Counting(stream, watch),
            names,
            stop=stop.is_set,
            observe=watch,
            max_messages=batch,
        )
    finally:
        stream.close()


def read_events(text: str) -> list[dict[str, object]]:
    """Usage events from a file: a JSON list, an API body (``{"events": [...]}``) or
    JSON lines (one event per line)."""
    stripped = text.lstrip()
    try:
        if stripped.startswith(("[", "{")) and not _is_json_lines(stripped):
            doc = orjson.loads(stripped)
            events = doc.get("events") if isinstance(doc, dict) else doc
        else:
            events = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The file is not JSON or JSON lines: {exc}") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise InvalidRequest("The file must hold usage events: JSON objects.")
    return events


def _is_json_lines(text: str) -> bool:
    first = text.split("\n", 1)[0].strip()
    if not first.startswith("{"):
        return False
    try:
        doc = orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and "events" not in doc
