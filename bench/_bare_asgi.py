"""C_asgi / C_auth: a bare ASGI app, the ceiling of the HTTP layer on one uvicorn worker.

Not a benchmark itself. ``POST /v1/usage-events`` bodies are parsed with orjson and their
``events`` counted (as ``accepted``). ``POST /v1/authorize`` (C_auth) parses its body,
checks the bearer header is there, looks the team up in a dict and answers that dict's
entry encoded with orjson: an authorization's work with every rule taken away. Any
other request gets the authorize-like answer as constant bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

_ANSWER: dict[str, Any] = {
    "allowed": True,
    "reason": "ok",
    "tier": {"level": 5, "requests_per_minute": 50000, "max_output_tokens": 131072},
    "available": "1000000.00",
}
_AUTHORIZE = orjson.dumps(_ANSWER)
_TEAMS: dict[str, dict[str, Any]] = {}
"""Answers by team id, filled on first sight (the app is not told the teams)."""

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
    elif scope["method"] == "POST" and scope["path"] == "/v1/authorize":
        if not any(name == b"authorization" for name, _ in scope["headers"]):
            raise RuntimeError("no bearer token")
        team = orjson.loads(body)["team_id"]
        answer = _TEAMS.get(team)
        if answer is None:
            answer = _TEAMS[team] = dict(_ANSWER)
        out = orjson.dumps(answer)
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
