"""The hold book of a single process (the embedded default): dicts under a lock.

Each team keeps its open holds, their running total, an index by request id and a
heap of expiry times, so placing, summing and ending a hold cost the same whether the
team has one open hold or ten thousand; expired holds are dropped from the top of the
heap as time passes them.
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass, field
from datetime import datetime

from creditledger.domain.holds import Hold, Placement, fits
from creditledger.domain.money import Nanos


@dataclass
class _TeamHolds:
    holds: dict[str, Hold] = field(default_factory=dict)
    by_request: dict[str, str] = field(default_factory=dict)
    total: Nanos = 0
    expiries: list[tuple[datetime, str]] = field(default_factory=list)

    def add(self, hold: Hold) -> None:
        self.holds[hold.id] = hold
        if hold.request_id is not None:
            self.by_request[hold.request_id] = hold.id
        self.total += hold.amount
        heapq.heappush(self.expiries, (hold.expires_at, hold.id))
        if len(self.expiries) > 2 * len(self.holds) + 64:
            # Holds ended by their usage leave their entry behind: rebuild from the open
            # ones now and then, so the heap stays within twice the open holds.
            self.expiries = [(h.expires_at, h.id) for h in self.holds.values()]
            heapq.heapify(self.expiries)

    def end(self, hold_id: str) -> Hold | None:
        hold = self.holds.pop(hold_id, None)
        if hold is None:
            return None
        if hold.request_id is not None:
            self.by_request.pop(hold.request_id, None)
        self.total -= hold.amount
        return hold

    def expire(self, now: datetime) -> list[str]:
        """Drop the holds no longer open at ``now``; their ids."""
        gone = []
        while self.expiries:
            hold_id = self.expiries[0][1]
            hold = self.holds.get(hold_id)
            if hold is not None and hold.is_open_at(now):
                break
            heapq.heappop(self.expiries)
            if hold is not None and self.end(hold_id) is not None:
                gone.append(hold_id)
        return gone


class MemoryHoldBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_team: dict[str, _TeamHolds] = {}
        self._team_of: dict[str, str] = {}

    def _open(self, team_id: str, now: datetime) -> _TeamHolds:
        """The team's holds, the expired ones dropped (called under the lock)."""
        team = self._by_team.get(team_id)
        if team is None:
            team = self._by_team[team_id] = _TeamHolds()
        for hold_id in team.expire(now):
            self._team_of.pop(hold_id, None)
        if not team.holds:
            del self._by_team[team_id]  # put back by ``place``; an empty team costs nothing
        return team

    def place(self, hold: Hold, cap: Nanos | None, now: datetime) -> Placement:
        with self._lock:
            team = self._open(hold.team_id, now)
            held = team.total
            if hold.request_id is not None:
                known = team.by_request.get(hold.request_id)
                if known is not None:
                    return Placement(team.holds[known], held)
            if not fits(held, hold.amount, cap):
                return Placement(None, held)
            team.add(hold)
            self._by_team[hold.team_id] = team
            self._team_of[hold.id] = hold.team_id
            return Placement(hold, held)

    def open_total(self, team_id: str, now: datetime) -> Nanos:
        with self._lock:
            if team_id not in self._by_team:  # no holds: nothing to expire either
                return 0
            return self._open(team_id, now).total

    def release(self, hold_id: str, now: datetime) -> Hold | None:
        with self._lock:
            team_id = self._team_of.pop(hold_id, None)
            if team_id is None:
                return None
            return self._open(team_id, now).end(hold_id)

    def release_requests(self, team_id: str, request_ids: list[str], now: datetime) -> int:
        with self._lock:
            team = self._open(team_id, now)
            ended = 0
            for request_id in request_ids:
                hold_id = team.by_request.get(request_id)
                if hold_id is not None and team.end(hold_id) is not None:
                    self._team_of.pop(hold_id, None)
                    ended += 1
            return ended
