"""The load generator: a separate process that replays pre-encoded HTTP/1.1 requests.

Not a benchmark itself; the benchmarks start it through ``_common.load``.

It keeps ``--connections`` keep-alive sockets to 127.0.0.1 and one ``select`` loop (whose
timeout has microsecond resolution, unlike epoll's milliseconds). With ``--rate`` > 0 it runs
an open loop: request *i* is due at ``start + i / rate`` and its latency is counted from that
moment, so time spent queueing behind a slow answer counts. With ``--rate 0`` it runs a
closed loop. Every loop is bounded by ``--duration`` and ``--max-requests``. It prints one
JSON document of figures.
"""

from __future__ import annotations

import argparse
import json
import pickle
import select
import socket
import sys
import time
from typing import Any

import orjson

_HEADER_END = b"\r\n\r\n"


class _Conn:
    __slots__ = ("buffer", "due", "header_end", "length", "sock", "status")

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.due = 0.0
        self.header_end = -1
        self.length = 0
        self.status = 0

    def start(self, request: bytes, due: float) -> None:
        self.buffer.clear()
        self.header_end = -1
        self.due = due
        self.sock.sendall(request)

    def feed(self, data: bytes) -> bool:
        """Add received bytes; True once the whole answer is in."""
        self.buffer += data
        if self.header_end < 0:
            end = self.buffer.find(_HEADER_END)
            if end < 0:
                return False
            self.header_end = end + 4
            head = bytes(self.buffer[:end]).decode("latin-1")
            first, *lines = head.split("\r\n")
            self.status = int(first.split(" ", 2)[1])
            self.length = -1
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    self.length = int(value)
            if self.length < 0:
                raise RuntimeError("answers without Content-Length are not supported here")
        return len(self.buffer) >= self.header_end + self.length

    def body(self) -> bytes:
        return bytes(self.buffer[self.header_end : self.header_end + self.length])


def run(
    port: int,
    requests: list[bytes],
    connections: int,
    duration: float,
    rate: float,
    once: bool,
    count_field: str | None,
    max_requests: int,
) -> dict[str, Any]:
    conns = [_Conn(port) for _ in range(connections)]
    idle = list(conns)
    busy: dict[socket.socket, _Conn] = {}
    total = min(max_requests, len(requests)) if once else max_requests
    if rate > 0:
        total = min(total, int(rate * duration))
    latencies: list[float] = []
    lateness: list[float] = []
    statuses: dict[int, int] = {}
    counted = 0
    sent = 0
    start = time.perf_counter()
    stop_sending = start + duration
    hard_stop = stop_sending + 30.0
    last_done = start
    while True:
        now = time.perf_counter()
        if now > hard_stop:
            break
        while idle and sent < total and now < stop_sending:
            due = start + sent / rate if rate > 0 else now
            if due > now:
                break
            conn = idle.pop()
            conn.start(requests[sent % len(requests)], due)
            lateness.append(time.perf_counter() - due)
            busy[conn.sock] = conn
            sent += 1
        if not busy and (sent >= total or now >= stop_sending):
            break
        timeout = 0.05
        if idle and sent < total and rate > 0:
            timeout = max(0.0, min(timeout, start + sent / rate - time.perf_counter()))
        if not busy:
            time.sleep(timeout)
            continue
        readable, _, _ = select.select(list(busy), [], [], timeout)
        for sock in readable:
            conn = busy[sock]
            data = sock.recv(1 << 20)
            if not data:
                raise RuntimeError("the server closed a connection")
            if conn.feed(data):
                done = time.perf_counter()
                latencies.append(done - conn.due)
                last_done = done
                statuses[conn.status] = statuses.get(conn.status, 0) + 1
                if count_field is not None and conn.status == 200:
                    counted += int(orjson.loads(conn.body())[count_field])
                del busy[sock]
                idle.append(conn)
    for conn in conns:
        conn.sock.close()
    elapsed = max(last_done - start, 1e-9)
    latencies.sort()
    lateness.sort()

    def pct(values: list[float], q: float) -> float:
        if not values:
            return 0.0
        return values[max(0, min(len(values) - 1, round(q / 100 * len(values) + 0.5) - 1))]

    return {
        "sent": sent,
        "completed": len(latencies),
        "elapsed_s": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "counted": counted,
        "counted_per_s": counted / elapsed,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "latency_ms": {
            "p50": 1000 * pct(latencies, 50),
            "p90": 1000 * pct(latencies, 90),
            "p99": 1000 * pct(latencies, 99),
            "p999": 1000 * pct(latencies, 99.9),
            "max": 1000 * (latencies[-1] if latencies else 0.0),
        },
        "send_lateness_ms": {"p50": 1000 * pct(lateness, 50), "p99": 1000 * pct(lateness, 99)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("requests", help="a pickled list of pre-encoded requests")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--count-field")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    args = parser.parse_args()
    with open(args.requests, "rb") as f:
        requests: list[bytes] = pickle.load(f)
    if not 1 <= args.connections <= 64 or not 0 < args.duration <= 600:
        sys.exit("1–64 connections, a duration up to 600 s")
    figures = run(
        args.port,
        requests,
        args.connections,
        args.duration,
        args.rate,
        args.once,
        args.count_field,
        args.max_requests,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
