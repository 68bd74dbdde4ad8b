"""The sandbox delivers its webhooks over HTTP, signed, retrying until a 2xx."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from creditledger.adapters.payments import signatures
from creditledger.adapters.payments.delivery import HttpDelivery

SECRET = "whsec_delivery"


class _Receiver(BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    received: ClassVar[list[tuple[bytes, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers["Sandbox-Signature"]))
        self.send_response(self.answers.pop(0) if self.answers else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"answers": [500, 503], "received": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/webhooks/sandbox", handler
    server.shutdown()
    server.server_close()


def test_a_webhook_is_retried_until_accepted_and_signed_at_each_attempt(
    receiver: tuple[str, type[_Receiver]],
) -> None:
    url, handler = receiver
    delivery = HttpDelivery(url, SECRET, delays=(0.05, 0.05, 0.05), timeout=2)
    delivery.put(b'{"id": "evt_1"}')
    deadline = time.monotonic() + 5
    while len(handler.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [body for body, _ in handler.received] == [b'{"id": "evt_1"}'] * 3
    for body, header in handler.received:
        signatures.verify(body, header, SECRET, time.time(), 300)
