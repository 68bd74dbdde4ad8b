"""Credit history entries and the opaque cursor that pages through them (SPEC §10)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.errors import InvalidCursor
from creditledger.domain.grants import GrantKind
from creditledger.domain.ledger import EntryType


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One posting to a team's own account, with the team's available balance after it.

    ``seq`` is the posting's position in the ledger: entries are shown newest first
    by ``seq``, which is also what the cursor remembers.
    """

    seq: int
    transaction_id: str
    type: EntryType
    occurred_at: datetime
    amount: int
    grant_id: str | None
    kind: GrantKind | None
    description: str
    balance_after: int
    reference: str | None

    @property
    def id(self) -> str:
        """Stable and opaque: one team-side posting per (transaction, grant or unpaid)."""
        digest = hashlib.sha256(f"{self.transaction_id}/{self.grant_id}".encode()).hexdigest()
        return f"entry_{digest[:32]}"


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    type: EntryType | None = None
    kind: GrantKind | None = None
    since: datetime | None = None
    until: datetime | None = None


_CURSOR_PREFIX = b"h1:"
MAX_SEQ = 2**63 - 1
"""Ledger sequences are signed 64-bit on both backends; a larger cursor was never given out."""


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(_CURSOR_PREFIX + str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    digits = raw[len(_CURSOR_PREFIX) :]
    if not raw.startswith(_CURSOR_PREFIX) or not digits.isdigit() or len(digits) > 19:
        raise InvalidCursor("`cursor` is not one this API gave out.", param="cursor")
    seq = int(digits)
    if seq > MAX_SEQ:
        raise InvalidCursor("`cursor` is not one this API gave out.", param="cursor")
    return seq
