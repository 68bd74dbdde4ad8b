"""A JSON response rendered with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class Json(JSONResponse):
    """``JSONResponse`` rendered with orjson (a ``JSONResponse`` so that the OpenAPI
    document shows each route's response model)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
