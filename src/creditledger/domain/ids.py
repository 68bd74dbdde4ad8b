"""Identifiers: a type prefix and 32 hex digits.

The first 48 bits are the creation time in milliseconds, so ids sort roughly by
age and keep B-tree inserts local; the other 80 bits are random, so ids can not
be guessed or enumerated. The time and randomness are passed in: the domain does
not read clocks.
"""

from __future__ import annotations


def make_id(prefix: str, millis: int, random_bytes: bytes) -> str:
    """``prefix_`` + hex of (48-bit milliseconds, 80 random bits)."""
    stamp = (millis & 0xFFFF_FFFF_FFFF).to_bytes(6, "big")
    return f"{prefix}_{stamp.hex()}{random_bytes[:10].hex()}"
