"""C_asgi: a bare ASGI app, the ceiling of the HTTP layer on one uvicorn worker.

Not a benchmark itself. POST bodies are parsed with orjson and their ``events`` counted
(as ``accepted``); any other request gets a small authorize-like JSON answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

_AUTHORIZE = orjson.dumps(
    {
        "allowed": True,
        "reason": "ok",
        "tier": {"level": 5, "requests_per_minute": 50000, "max_output_tokens": 131072},
        "available": "1000000.00",
    }
)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST" and scope["path"] == "/v1/usage-events":
        count = len(orjson.loads(body)["events"])
        out = orjson.dumps({"accepted": count, "duplicates": 0, "rejected": []})
    else:
        out = _AUTHORIZE
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(out)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": out})
