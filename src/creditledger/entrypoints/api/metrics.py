"""Prometheus metrics of the HTTP layer."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
"""The latency histogram's upper bounds, in seconds (and +Inf)."""


class _Series:
    """One (method, route, status): answered requests by latency bucket, and their sum."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.total = 0.0


class HttpMetrics(Collector):
    """``creditledger_http_requests_total`` (by method, route and status) and
    ``creditledger_http_request_seconds`` (by method and route), kept as plain counts
    under one lock and turned into Prometheus families when scraped.

    Every answered request is counted, the authorizations before each inference request
    included; the client library's labelled ``Counter`` and ``Histogram`` take a lock per
    value and search the buckets in Python, about four times this, on that path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, int], _Series] = {}

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, status)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series()
            series.buckets[bisect_left(BUCKETS, seconds)] += 1
            series.total += seconds

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            kept = [(key, list(s.buckets), s.total) for key, s in self._series.items()]
        requests = CounterMetricFamily(
            "creditledger_http_requests", "HTTP requests", labels=["method", "route", "status"]
        )
        latency: dict[tuple[str, str], tuple[list[int], float]] = {}
        for (method, path, status), buckets, total in kept:
            requests.add_metric([method, path, str(status)], sum(buckets))
            counts, seconds = latency.get((method, path), ([0] * len(buckets), 0.0))
            latency[(method, path)] = (
                [a + b for a, b in zip(counts, buckets, strict=True)],
                seconds + total,
            )
        yield requests
        family = HistogramMetricFamily(
            "creditledger_http_request_seconds", "HTTP request latency", labels=["method", "route"]
        )
        for (method, path), (counts, seconds) in sorted(latency.items()):
            cumulative = 0
            pairs = []
            for bound, count in zip([*map(floatToGoString, BUCKETS), "+Inf"], counts, strict=True):
                cumulative += count
                pairs.append((bound, float(cumulative)))
            family.add_metric([method, path], pairs, seconds)
        yield family


HTTP = HttpMetrics()
REGISTRY.register(HTTP)


class Metrics:
    """Count requests and time them, by method, route template and status.

    A plain ASGI middleware: it only watches the response start go by, so the answer is
    not re-streamed through a task group as ``BaseHTTPMiddleware`` does (which cost a
    third of the time of a small request).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            observe(scope["method"], path, status, time.perf_counter() - started)


observe = HTTP.observe
"""Count one answered request and its time (``path``: the route's template)."""
