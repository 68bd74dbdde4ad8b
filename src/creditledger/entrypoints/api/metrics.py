"""Prometheus metrics of the HTTP layer."""

from __future__ import annotations

import functools
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "creditledger_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
LATENCY = Histogram(
    "creditledger_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


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


@functools.cache
def _series(method: str, path: str, status: int) -> tuple[Histogram, Counter]:
    return LATENCY.labels(method, path), REQUESTS.labels(method, path, str(status))


def observe(method: str, path: str, status: int, seconds: float) -> None:
    """Count one answered request and its time (``path``: the route's template)."""
    latency, requests = _series(method, path, status)
    latency.observe(seconds)
    requests.inc()
