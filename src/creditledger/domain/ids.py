"""Identifiers: a type prefix and 32 hex digits.

The first 48 bits are the creation time in milliseconds, so ids sort roughly by
age and keep B-tree inserts local; the other 80 bits are random, so ids can not
be guessed or enumerated. The time and randomness are passed in: the domain does
not read clocks.
"""

from __future__ import annotations

import re

_MILLIS = 2**48 - 1
RANDOM_BYTES = 10
_ID_RE = re.compile(r"\A(?P<prefix>[a-z]{1,10})_[0-9a-z]{1,32}\Z")


def make_id(prefix: str, millis: int, random: bytes) -> str:
    """``prefix_`` + 32 hex digits: 48-bit milliseconds, then 80 random bits (10 bytes)."""
    if len(random) != RANDOM_BYTES:
        raise ValueError(f"an id takes {RANDOM_BYTES} random bytes")
    return f"{prefix}_{millis & _MILLIS:012x}{random.hex()}"


def is_id(value: str, prefix: str) -> bool:
    """Could ``value`` be an id of this kind? Anything else (a NUL byte, a path
    fragment, 5,000 characters) is not looked up: it answers like a missing id."""
    match = _ID_RE.match(value)
    return match is not None and match.group("prefix") == prefix
