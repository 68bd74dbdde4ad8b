"""Identifiers: a type prefix and 26 characters of Crockford base32.

The first 48 bits are the creation time in milliseconds, so ids sort roughly by
age and keep B-tree inserts local; the other 80 bits are random, so ids can not
be guessed or enumerated. The time and randomness are passed in: the domain does
not read clocks.
"""

from __future__ import annotations

import re

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_ID_RE = re.compile(r"\A(?P<prefix>[a-z]{1,10})_[0-9a-z]{1,32}\Z")


def make_id(prefix: str, millis: int, random_bits: int) -> str:
    value = ((millis & (2**48 - 1)) << 80) | (random_bits & (2**80 - 1))
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"


def is_id(value: str, prefix: str) -> bool:
    """Could ``value`` be an id of this kind? Anything else (a NUL byte, a path
    fragment, 5,000 characters) is not looked up: it answers like a missing id."""
    match = _ID_RE.match(value)
    return match is not None and match.group("prefix") == prefix
