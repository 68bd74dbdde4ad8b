"""Stripe's webhook signature scheme, which the sandbox provider uses too.

Header: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``. The
signature covers the raw bytes as received; a timestamp further than
``tolerance`` seconds from now, in the past or the future, is refused.
"""

from __future__ import annotations

import hashlib
import hmac

from creditledger.domain.errors import InvalidSignature

DEFAULT_TOLERANCE = 300


def compute(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` signed at ``timestamp``."""
    return f"t={timestamp},v1={compute(secret, timestamp, body)}"


def parse_header(header: str | None) -> tuple[int, list[str]]:
    """(timestamp, v1 signatures) of a header, or ``InvalidSignature``."""
    if not header:
        raise InvalidSignature("The webhook has no signature header.")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidSignature("The webhook signature header is malformed.")
    return timestamp, signatures


def check_timestamp(timestamp: int, now: float, tolerance: int) -> None:
    if timestamp < now - tolerance:
        raise InvalidSignature("The webhook signature is too old.")
    if timestamp > now + tolerance:
        raise InvalidSignature("The webhook signature is dated in the future.")


def verify(body: bytes, header: str | None, secret: str, now: float, tolerance: int) -> None:
    """Raise ``InvalidSignature`` unless ``header`` signs ``body`` with ``secret`` near ``now``.

    Signatures are compared in constant time.
    """
    timestamp, signatures = parse_header(header)
    expected = compute(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise InvalidSignature("The webhook signature does not match its body.")
    check_timestamp(timestamp, now, tolerance)
