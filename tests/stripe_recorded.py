"""An HTTP client for Stripe's SDK that answers from recorded responses (offline)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import stripe

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"


def recorded(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return body


class RecordedHTTPClient(stripe.HTTPClient):
    """Answers each request with the next recorded (status, body); keeps what was sent."""

    name = "recorded"

    def __init__(self, *answers: tuple[int, dict[str, Any]] | Exception) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        parts = urlsplit(url)
        self.sent.append(
            {
                "method": method,
                "base": f"{parts.scheme}://{parts.netloc}",
                "path": parts.path,
                "query": parse_qs(parts.query),
                "headers": dict(headers or {}),
                "form": parse_qs(
                    post_data.decode() if isinstance(post_data, bytes) else post_data or ""
                ),
            }
        )
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return json.dumps(body), status, {"request-id": "req_recorded"}

    def close(self) -> None:
        return None


def signed(payload: str, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` header made by the SDK itself."""
    return str(stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp))
