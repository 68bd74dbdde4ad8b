"""The hold book of a single process (the embedded default): a dict under a lock."""

from __future__ import annotations

import threading
from datetime import datetime

from creditledger.domain.holds import Hold, fits
from creditledger.domain.money import Nanos


class MemoryHoldBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_team: dict[str, dict[str, Hold]] = {}
        self._team_of: dict[str, str] = {}

    def _open(self, team_id: str, now: datetime) -> dict[str, Hold]:
        """The team's holds, the expired ones dropped (called under the lock)."""
        holds = self._by_team.get(team_id, {})
        for hold_id in [h.id for h in holds.values() if not h.is_open_at(now)]:
            del holds[hold_id]
            self._team_of.pop(hold_id, None)
        return holds

    def place(self, hold: Hold, cap: Nanos | None, now: datetime) -> Hold | None:
        with self._lock:
            holds = self._open(hold.team_id, now)
            if hold.request_id is not None:
                for held in holds.values():
                    if held.request_id == hold.request_id:
                        return held
            if not fits(sum(h.amount for h in holds.values()), hold.amount, cap):
                return None
            self._by_team.setdefault(hold.team_id, holds)[hold.id] = hold
            self._team_of[hold.id] = hold.team_id
            return hold

    def open_total(self, team_id: str, now: datetime) -> Nanos:
        with self._lock:
            return sum(h.amount for h in self._open(team_id, now).values())

    def release(self, hold_id: str, now: datetime) -> Hold | None:
        with self._lock:
            team_id = self._team_of.get(hold_id)
            if team_id is None:
                return None
            hold = self._open(team_id, now).pop(hold_id, None)
            self._team_of.pop(hold_id, None)
            return hold

    def release_requests(self, team_id: str, request_ids: list[str], now: datetime) -> int:
        wanted = set(request_ids)
        with self._lock:
            holds = self._open(team_id, now)
            ended = [h.id for h in holds.values() if h.request_id in wanted]
            for hold_id in ended:
                del holds[hold_id]
                self._team_of.pop(hold_id, None)
            return len(ended)
