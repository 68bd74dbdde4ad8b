"""``creditledger streams setup``: the usage stream, the rejected stream and the shared
consumer, made or brought to this configuration (idempotent), and what can be told of
the server's durability (docs/decisions/0025)."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import nats.js.errors
from nats.js import api
from nats.js.client import JetStreamContext

from creditledger.adapters.streams.connection import NatsLoop
from creditledger.domain.intake import IntakeNames

TIMEOUT_SECONDS = 10.0
MAX_EVENT_BYTES = 64 * 1024
"""The largest usage event a message may carry (one event is well under 2 KB)."""
REJECTED_MAX_AGE_SECONDS = 30 * 24 * 3600
SYNC_ALWAYS_SINCE = (2, 10)
"""The first nats-server that takes ``jetstream { sync_interval: always }``."""


@dataclass(frozen=True, slots=True)
class StreamLimits:
    replicas: int = 1
    max_bytes: int = 8 * 1024**3
    max_msgs: int = 50_000_000
    duplicate_window_seconds: int = 120
    ack_wait_seconds: int = 60
    max_ack_pending: int = 20_000


@dataclass(slots=True)
class SetupReport:
    done: list[str] = field(default_factory=list)
    """What was created, updated or found as it should be, one line each."""
    warnings: list[str] = field(default_factory=list)
    server_version: str = ""


def usage_stream(names: IntakeNames, limits: StreamLimits) -> api.StreamConfig:
    """Work-queue retention: a message stays until a worker acknowledges it, and only
    unconsumed usage counts against the limits; when they are reached, new publishes
    are refused (the gateway keeps and retries them), never old ones dropped. No age
    limit: usage leaves the stream by being charged or rejected, not by waiting."""
    return api.StreamConfig(
        name=names.stream,
        description="creditledger usage events (docs/decisions/0025)",
        subjects=[names.events],
        retention=api.RetentionPolicy.WORK_QUEUE,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.NEW,
        max_bytes=limits.max_bytes,
        max_msgs=limits.max_msgs,
        max_age=0,
        max_msg_size=MAX_EVENT_BYTES,
        max_consumers=-1,
        duplicate_window=float(limits.duplicate_window_seconds),
        num_replicas=limits.replicas,
    )


def rejected_stream(names: IntakeNames, limits: StreamLimits) -> api.StreamConfig:
    """Refused messages with their codes, for operators: kept 30 days, in an eighth of
    the usage stream's room (the server sets aside each stream's bytes when it is made)."""
    return api.StreamConfig(
        name=names.rejected_stream,
        description="creditledger usage events refused, with their codes",
        subjects=[names.rejected],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_bytes=max(1024**2, limits.max_bytes // 8),
        max_msgs=-1,
        max_age=float(REJECTED_MAX_AGE_SECONDS),
        max_msg_size=MAX_EVENT_BYTES + 4096,
        max_consumers=-1,
        duplicate_window=float(limits.duplicate_window_seconds),
        num_replicas=limits.replicas,
    )


def usage_consumer(names: IntakeNames, limits: StreamLimits) -> api.ConsumerConfig:
    """The durable consumer every worker pulls from. Explicit acknowledgements, one per
    message (acknowledging all up to a sequence would take other workers' messages
    too); unlimited deliveries, so no event is ever given up on."""
    return api.ConsumerConfig(
        name=names.consumer,
        durable_name=names.consumer,
        description="creditledger consume workers",
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=float(limits.ack_wait_seconds),
        max_deliver=-1,
        max_ack_pending=limits.max_ack_pending,
        max_waiting=512,
        filter_subject=names.events,
        replay_policy=api.ReplayPolicy.INSTANT,
    )


def setup_streams(
    url: str, names: IntakeNames, limits: StreamLimits, monitor_url: str | None = None
) -> SetupReport:
    conn = NatsLoop(url, "creditledger streams setup")
    try:
        return conn.run(_setup(conn, names, limits, monitor_url), TIMEOUT_SECONDS)
    finally:
        conn.close()


async def _setup(
    conn: NatsLoop, names: IntakeNames, limits: StreamLimits, monitor_url: str | None
) -> SetupReport:
    js = conn.nc.jetstream(timeout=TIMEOUT_SECONDS)
    version = conn.nc.connected_server_version
    report = SetupReport(server_version=f"{version.major}.{version.minor}.{version.patch}")
    for config in (usage_stream(names, limits), rejected_stream(names, limits)):
        report.done.append(await _ensure_stream(js, config))
    report.done.append(await _ensure_consumer(js, names, usage_consumer(names, limits)))
    report.warnings += durability_warnings(report.server_version, limits.replicas, monitor_url)
    return report


_COMPARED = (
    "subjects",
    "retention",
    "storage",
    "discard",
    "max_bytes",
    "max_msgs",
    "max_age",
    "max_msg_size",
    "duplicate_window",
    "num_replicas",
)


async def _ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> str:
    try:
        info = await js.stream_info(config.name or "")
    except nats.js.errors.NotFoundError:
        await js.add_stream(config)
        return f"stream {config.name} created: {_describe(config)}"
    differs = [f for f in _COMPARED if getattr(info.config, f) != getattr(config, f)]
    if not differs:
        return f"stream {config.name} as configured: {_describe(config)}"
    await js.update_stream(config)
    return f"stream {config.name} updated ({', '.join(differs)}): {_describe(config)}"


async def _ensure_consumer(
    js: JetStreamContext, names: IntakeNames, config: api.ConsumerConfig
) -> str:
    what = (
        f"ack wait {config.ack_wait:g} s, at most {config.max_ack_pending} unacknowledged, "
        "explicit acks, unlimited deliveries"
    )
    try:
        info = await js.consumer_info(names.stream, names.consumer)
    except nats.js.errors.NotFoundError:
        await js.add_consumer(names.stream, config)
        return f"consumer {names.consumer} created: {what}"
    current = info.config
    if (current.ack_wait, current.max_ack_pending, current.max_deliver) == (
        config.ack_wait,
        config.max_ack_pending,
        config.max_deliver,
    ) and current.filter_subject == config.filter_subject:
        return f"consumer {names.consumer} as configured: {what}"
    # Creating a durable consumer again with another configuration updates it.
    await js.add_consumer(names.stream, config)
    return f"consumer {names.consumer} updated: {what}"


def _describe(config: api.StreamConfig) -> str:
    retention = config.retention.value if config.retention else "?"
    age = f"{config.max_age / 86400:g} days" if config.max_age else "no age limit"
    return (
        f"{', '.join(config.subjects or [])}, {retention}, file storage, "
        f"{config.num_replicas} replica(s), at most {config.max_msgs} messages / "
        f"{config.max_bytes} bytes (discard {config.discard.value if config.discard else '?'}), "
        f"{age}, duplicate window {config.duplicate_window:g} s"
    )


def server_version(text: str) -> tuple[int, int]:
    try:
        major, minor = text.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def durability_warnings(version: str, replicas: int, monitor_url: str | None) -> list[str]:
    """What can be told from here of whether an acknowledged publish survives a power
    loss: the server must sync every write (``sync_interval: always``), a server
    setting that no client can read or set, short of its monitoring endpoint."""
    if server_version(version) < SYNC_ALWAYS_SINCE:
        return [
            f"nats-server {version} can not sync every write to disk (`jetstream "
            "{ sync_interval: always }` needs 2.10 or later): it writes to disk every "
            "2 minutes, so a power loss or OS crash can lose usage it has acknowledged"
            + (" on every replica at once." if replicas > 1 else ".")
        ]
    if monitor_url is None:
        return [
            "can not tell whether the server syncs every write: configure "
            "`jetstream { sync_interval: always }` and set CREDITLEDGER_NATS_MONITOR_URL "
            "to have it checked."
        ]
    try:
        varz = _read_json(f"{monitor_url.rstrip('/')}/varz")
    except (OSError, ValueError) as exc:
        return [f"could not read {monitor_url}/varz to check the server's sync: {exc}"]
    config = varz.get("jetstream", {}).get("config", {})
    if config.get("sync_always") is True:
        return []
    return [
        "the server does not sync every write (no `jetstream { sync_interval: always }`): "
        "a power loss or OS crash can lose usage it has acknowledged."
    ]


def _read_json(url: str) -> dict[str, Any]:
    if not url.startswith(("http://", "https://")):
        raise ValueError("CREDITLEDGER_NATS_MONITOR_URL must be an http(s) URL")
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - checked above
        doc: dict[str, Any] = json.loads(response.read())
    return doc
