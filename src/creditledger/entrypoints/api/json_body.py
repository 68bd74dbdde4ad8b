"""Read a request body as JSON, strictly: the one decoder for every JSON route.

``orjson`` refuses what is not JSON (invalid UTF-8, lone surrogates, ``NaN``,
truncation, nesting deeper than 1,024) fast; a second pass with the standard
library's scanner refuses an object that names a key twice, which every JSON
parser would otherwise settle silently with "last one wins".
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from creditledger.domain.errors import InvalidJson, InvalidRequest, UnknownField

SCOPE_KEY = "creditledger.json"
"""Where the decoded body waits in the ASGI scope for a route that reads it itself."""


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key[:64]
                raise InvalidRequest(
                    f"`{shown}` appears more than once in an object; send each field once.",
                    param=shown,
                )
            seen.add(key)


_DUPLICATE_CHECK = json.JSONDecoder(object_pairs_hook=_refuse_duplicate_keys)


def decode_json(raw: bytes) -> Any:
    """The JSON value of ``raw``; :class:`InvalidJson` or :class:`InvalidRequest` if not."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidJson(
            'The body is not valid JSON: send UTF-8 JSON text, such as {"name": "value"}.'
        ) from None
    if isinstance(value, dict | list):
        # orjson accepted it, so it is valid UTF-8 JSON of bounded depth: this only
        # looks for repeated keys.
        try:
            _DUPLICATE_CHECK.decode(raw.decode())
        except RecursionError:
            raise InvalidJson("The body is nested too deeply to be read.") from None
    return value


def usage_events(body: object) -> object:
    """The events of a decoded ``POST /v1/usage-events`` body: ``{"events": [...]}``
    and nothing else (each event is judged later, on its own)."""
    if not isinstance(body, dict) or "events" not in body:
        raise InvalidRequest('The body must be a JSON object: {"events": [...]}.', param="events")
    extra = body.keys() - {"events"}
    if extra:
        name = sorted(extra)[0]
        raise UnknownField(f"`{name}` is not a field of this request.", param=name)
    return body["events"]
