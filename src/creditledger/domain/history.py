"""Credit history entries and the opaque cursor that pages through them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.cursors import CursorCodec
from creditledger.domain.grants import GrantKind
from creditledger.domain.ledger import EntryType
from creditledger.domain.money import Nanos


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
    amount: Nanos
    grant_id: str | None
    kind: GrantKind | None
    description: str
    balance_after: Nanos
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


HISTORY = "history"
"""The list name credit-history cursors are sealed for (``domain.cursors``)."""


def encode_cursor(codec: CursorCodec, team_id: str, seq: int) -> str:
    """The cursor after the entry ``seq`` of the team's history: opaque, and good for
    this team's history only."""
    return codec.seal_seq(HISTORY, team_id, seq)


def decode_cursor(codec: CursorCodec, team_id: str, cursor: str) -> int:
    """The ``seq`` a cursor of this team's history stands for; ``InvalidCursor`` else."""
    return codec.open_seq(HISTORY, team_id, cursor)
