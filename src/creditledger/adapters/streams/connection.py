"""A NATS connection for synchronous callers: nats-py is asyncio, the services are not.

The connection lives on an event loop of its own in a background thread; each call
runs one coroutine there and waits for it. A NATS error becomes ``ServiceUnavailable``.
The client reconnects by itself for as long as the process runs (a restarted server is
found again, and its subscriptions are made again).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client

from creditledger.domain.errors import ServiceUnavailable

T = TypeVar("T")

CALL_MARGIN_SECONDS = 10.0
"""How much longer than its own timeout a call may take before it is given up."""


class NatsLoop:
    """One NATS connection on its own event loop thread."""

    def __init__(self, url: str, name: str, connect_timeout: float = 5.0) -> None:
        self.url = url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._thread.start()
        try:
            self.nc: Client = self.run(self._connect(name, connect_timeout), connect_timeout)
        except BaseException:
            self._stop_loop()
            raise

    async def _connect(self, name: str, timeout: float) -> Client:
        return await nats.connect(
            servers=[part.strip() for part in self.url.split(",") if part.strip()],
            name=name,
            connect_timeout=timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=_quiet,
            disconnected_cb=_nothing,
            reconnected_cb=_nothing,
        )

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the connection's loop; NATS errors become ServiceUnavailable."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout + CALL_MARGIN_SECONDS)
        except TimeoutError:  # waiting here, or a timeout of the call itself
            future.cancel()
            raise ServiceUnavailable(f"NATS at {self.url} did not answer in time.") from None
        except (nats.errors.Error, OSError) as exc:
            raise ServiceUnavailable(f"NATS at {self.url}: {exc or type(exc).__name__}") from exc

    def close(self, timeout: float = 10.0) -> None:
        """Send what is buffered (acknowledgements included), then disconnect."""
        try:
            if not self.nc.is_closed:
                self.run(self._flush_and_close(timeout), timeout)
        except ServiceUnavailable:
            pass
        finally:
            self._stop_loop()

    async def _flush_and_close(self, timeout: float) -> None:
        try:
            await self.nc.flush(timeout=max(1, int(timeout)))
        finally:
            await self.nc.close()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


async def _quiet(_: Exception) -> None:
    """nats-py logs every reconnection attempt's error by default; the callers see the
    outage as ServiceUnavailable instead."""


async def _nothing() -> None:
    return None
