"""How the sandbox delivers its webhooks: asynchronously, signed, with retries.

:class:`HttpDelivery` posts each event from a background thread to
``<public url>/v1/webhooks/sandbox``, signing it at each attempt (as Stripe does)
and retrying with backoff until a 2xx. :class:`ManualOutbox` keeps events for a
test to deliver when and as often as it likes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Protocol

from creditledger.adapters.payments import signatures

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Sandbox-Signature"
RETRY_DELAYS = (1.0, 2.0, 5.0, 15.0, 60.0, 300.0)


class WebhookOutbox(Protocol):
    def put(self, body: bytes) -> None: ...


def signed_headers(secret: str, body: bytes, now: float) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signatures.sign(secret, body, int(now)),
    }


class ManualOutbox:
    """Events wait here until a test takes them."""

    def __init__(self, secret: str, wall_time: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.wall_time = wall_time
        self._events: list[bytes] = []
        self._lock = threading.Lock()

    def put(self, body: bytes) -> None:
        with self._lock:
            self._events.append(body)

    def take(self) -> list[tuple[bytes, dict[str, str]]]:
        """Every waiting event with freshly signed headers; the outbox is then empty."""
        with self._lock:
            events, self._events = self._events, []
        return [(body, signed_headers(self.secret, body, self.wall_time())) for body in events]


class HttpDelivery:
    """Posts events to ``url`` from one daemon thread, started by the first event."""

    def __init__(
        self,
        url: str,
        secret: str | Callable[[], str],
        delays: tuple[float, ...] = RETRY_DELAYS,
        timeout: float = 10.0,
    ) -> None:
        """``secret`` may be read lazily (a callable), as when it is kept in the database."""
        self.url = url
        self.secret: Callable[[], str] = (lambda: secret) if isinstance(secret, str) else secret
        self.delays = delays
        self.timeout = timeout
        self._queue: queue.Queue[tuple[bytes, int, float]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, body: bytes) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-webhooks", daemon=True
                )
                self._thread.start()
        self._queue.put((body, 0, time.monotonic()))

    def _run(self) -> None:
        while True:
            body, attempt, due = self._queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 1.0))
                self._queue.put((body, attempt, due))
                continue
            if self._send(body):
                continue
            if attempt < len(self.delays):
                self._queue.put((body, attempt + 1, time.monotonic() + self.delays[attempt]))
            else:
                log.error("sandbox webhook dropped after %d attempts", attempt + 1)

    def _send(self, body: bytes) -> bool:
        request = urllib.request.Request(  # noqa: S310 - our own configured URL
            self.url,
            data=body,
            headers=signed_headers(self.secret(), body, time.time()),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return 200 <= int(response.status) < 300
        except (urllib.error.URLError, OSError) as exc:
            log.warning("sandbox webhook to %s failed: %s", self.url, exc)
            return False
