"""C_hist_http: a bare ASGI app answering the credit history page with the page's own SQL.

Not a benchmark itself; ``history.py`` serves it with the same server stack as ours
(uvicorn, httptools, uvloop, one worker) and measures it beside our page. For
``GET /v1/teams/{team_id}/credit-history?limit=&cursor=`` it checks that a bearer header
is there, opens the cursor with the deployment's cursor key (read once at startup), runs
the page's keyset statement on one psycopg connection of its own (autocommit, prepared
on first use, on the event loop), and answers the same JSON document as the page, encoded
with orjson: the work of a page with every rule taken away (no token lookup, no access
check, no audit, no framework). Anything else is a 404.

Configured by the environment, which ``history.py`` fills:

- ``BARE_HISTORY_DSN``: the database (libpq form);
- ``BARE_HISTORY_SQL``: JSON ``{"sql": …, "params": {name: "team" | "before" | "limit"}}``,
  the statement the page runs, as captured from it, and what each named parameter holds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import orjson
import psycopg

from creditledger.domain.cursors import CursorCodec

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PREFIX = "/v1/teams/"
SUFFIX = "/credit-history"
NEWEST = 2**63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NANOS = 1_000_000_000
_JSON = [(b"content-type", b"application/json")]


class _State:
    conn: psycopg.Connection[tuple[Any, ...]]
    codec: CursorCodec
    sql: str
    params: dict[str, str]


_state = _State()


def _start() -> None:
    spec = orjson.loads(os.environ["BARE_HISTORY_SQL"])
    _state.sql = spec["sql"]
    _state.params = spec["params"]
    _state.conn = psycopg.connect(
        os.environ["BARE_HISTORY_DSN"], autocommit=True, prepare_threshold=0
    )
    row = _state.conn.execute(
        "SELECT value FROM service_secrets WHERE name = 'cursor_secret'"
    ).fetchone()
    if row is None:
        raise RuntimeError("no cursor secret in the database yet")
    _state.codec = CursorCodec(row[0])


def _money(nanos: int) -> str:
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANOS)
    return f"{sign}{whole}.{f'{frac:09d}'.rstrip('0').ljust(2, '0')}"


def _instant(micros: int) -> str:
    return (EPOCH + timedelta(microseconds=micros)).isoformat().replace("+00:00", "Z")


def page(team: str, limit: int, cursor: str | None) -> bytes:
    """The page's JSON document: ``{"data": [...], "next_cursor": ...}``."""
    codec = _state.codec
    before = NEWEST if cursor is None else codec.open_seq("history", team, cursor)
    values = {"team": team, "before": before, "limit": limit + 1}
    args = {name: values[what] for name, what in _state.params.items()}
    rows = _state.conn.execute(_state.sql, args, prepare=True).fetchall()
    data = [
        {
            "id": "entry_" + hashlib.sha256(f"{r[1]}/{r[3]}".encode()).hexdigest()[:32],
            "type": r[5],
            "occurred_at": _instant(r[6]),
            "amount": _money(r[2]),
            "grant_id": r[3],
            "kind": r[9],
            "description": r[7],
            "balance_after": _money(r[4]),
            "reference": r[8],
        }
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    next_cursor = codec.seal_seq("history", team, rows[limit - 1][0]) if more else None
    return orjson.dumps({"data": data, "next_cursor": next_cursor})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                _state.conn.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    status, out = 404, b'{"error":{"code":"not_found","message":"","param":null}}'
    if path == "/healthz":
        status, out = 200, b'{"status":"ok"}'
    elif scope["method"] == "GET" and path.startswith(PREFIX) and path.endswith(SUFFIX):
        if not any(name == b"authorization" for name, _ in scope["headers"]):
            raise RuntimeError("no bearer token")
        query = dict(parse_qsl(scope["query_string"].decode()))
        team = path[len(PREFIX) : -len(SUFFIX)]
        status, out = 200, page(team, int(query.get("limit", 50)), query.get("cursor"))
    headers = [*_JSON, (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out})
