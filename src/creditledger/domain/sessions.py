"""Web sessions: how long a signed-in browser stays signed in.

A session is a random secret in a cookie; the server keeps only its hash, with the
user, when it started and when it ends. It ends at ``expires_at`` (an absolute
lifetime: activity does not stretch it) or when it is revoked (signing out).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class WebSession:
    id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def is_live_at(self, at: datetime) -> bool:
        return self.revoked_at is None and at < self.expires_at


def session_expiry(started_at: datetime, lifetime: timedelta) -> datetime:
    """When a session started at ``started_at`` ends, whatever happens in between."""
    return started_at + lifetime
