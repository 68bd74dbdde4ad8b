"""Budgets of attempts: how often a caller may get something wrong in a
window before the next attempt is refused with ``too_many_attempts``.

A budget names what it counts (an account, a client address, a user, a team), the
key its counter lives under, and its size. Counting is the rate limiter's job; this
module only builds the keys, so they are the same in every process. Keys carry no
personal data in clear (an email is hashed), and an IPv6 client is counted by its
/64 network, the block one subscriber usually holds, so hopping between the
addresses of one connection does not buy a fresh budget.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import math
from dataclasses import dataclass

MAX_CLIENT_LENGTH = 100
"""The longest client address kept (an IPv6 address with a zone is under 50)."""


class Counted(enum.StrEnum):
    """Whose attempts a budget counts."""

    ACCOUNT = "account"
    ADDRESS = "address"
    USER = "user"
    TEAM = "team"


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` counted attempts under ``key`` in any window of ``window_seconds``."""

    counted: Counted
    key: str
    limit: int
    window_seconds: int


def digest(value: str) -> str:
    """A stable stand-in for a value that must not sit in a counter's key in clear."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def address_key(client: str) -> str:
    """The part of a client address that is counted: an IPv4 address, an IPv6 /64
    network, or (not an IP address at all, e.g. a test client) the text itself."""
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return digest(client)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def budget_key(action: str, counted: Counted, value: str) -> str:
    """``login-failures:account:<digest>``: one counter per action, kind and value."""
    part = address_key(value) if counted is Counted.ADDRESS else value
    return f"{action}:{counted.value}:{part}"


def minutes(retry_after: int) -> str:
    """``"1 minute"``, ``"15 minutes"``: a wait in seconds, rounded up to minutes."""
    count = max(1, math.ceil(retry_after / 60))
    return f"{count} minute{'s' if count > 1 else ''}"
