"""The hold book in Redis, shared by every process: each operation is one Lua script,
so Redis runs it whole before any other (docs/decisions/0017).

Keys, under a namespace: ``<ns>:team:<team_id>`` is a hash of hold id → the hold as
JSON (amount in nanos, expiry in epoch microseconds, request id); ``<ns>:hold:<id>``
names a hold's team, so a release by id finds it, and expires with the hold. Expired
holds are dropped from a team's hash whenever the team is touched.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis
from redis.exceptions import RedisError

from creditledger.domain.errors import ServiceUnavailable
from creditledger.domain.holds import Hold, Placement
from creditledger.domain.money import Nanos

UNREACHABLE = "The hold book (Redis) does not answer; try again shortly."

# Drop a team's expired holds; return the rest as a flat list [id, json, id, json, ...].
_SWEEP = """
local function sweep(team_key, now)
  local all = redis.call('HGETALL', team_key)
  local open = {}
  for i = 1, #all, 2 do
    local hold = cjson.decode(all[i + 1])
    if hold.expires <= now then
      redis.call('HDEL', team_key, all[i])
    else
      table.insert(open, {all[i], hold, all[i + 1]})
    end
  end
  return open
end
"""

# KEYS: team key, hold key. ARGV: now, hold id, hold json, amount, cap (-1: none),
# request id ('' for none), ttl ms. Returns the open total before the call, then the
# id and JSON of the hold that stands for the request, if any.
_PLACE = (
    _SWEEP
    + """
local now = tonumber(ARGV[1])
local open = sweep(KEYS[1], now)
local total = 0
local known = nil
for _, entry in ipairs(open) do
  if ARGV[6] ~= '' and entry[2].request_id == ARGV[6] then known = entry end
  total = total + entry[2].amount
end
if known then return {total, known[1], known[3]} end
-- domain.holds.fits, pinned to it by the hold book tests
local cap = tonumber(ARGV[5])
if cap >= 0 and (total >= cap or total + tonumber(ARGV[4]) > cap) then
  return {total}
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[7])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[7]) then redis.call('PEXPIRE', KEYS[1], ARGV[7]) end
return {total, ARGV[2], ARGV[3]}
"""
)

# KEYS: team key. ARGV: now.
_TOTAL = (
    _SWEEP
    + """
local total = 0
for _, entry in ipairs(sweep(KEYS[1], tonumber(ARGV[1]))) do
  total = total + entry[2].amount
end
return total
"""
)

# KEYS: hold key. ARGV: now, namespace prefix of hold keys.
_RELEASE = (
    _SWEEP
    + """
local team_key = redis.call('GET', KEYS[1])
if not team_key then return false end
redis.call('DEL', KEYS[1])
local raw = redis.call('HGET', team_key, ARGV[2])
if not raw then return false end
redis.call('HDEL', team_key, ARGV[2])
if cjson.decode(raw).expires <= tonumber(ARGV[1]) then return false end
return raw
"""
)

# KEYS: team key. ARGV: now, hold key prefix, request ids...
_RELEASE_REQUESTS = (
    _SWEEP
    + """
local wanted = {}
for i = 3, #ARGV do wanted[ARGV[i]] = true end
local ended = 0
for _, entry in ipairs(sweep(KEYS[1], tonumber(ARGV[1]))) do
  local rid = entry[2].request_id
  if rid ~= cjson.null and wanted[rid] then
    redis.call('HDEL', KEYS[1], entry[1])
    redis.call('DEL', ARGV[2] .. entry[1])
    ended = ended + 1
  end
end
return ended
"""
)


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _encode(hold: Hold) -> str:
    return json.dumps(
        {
            "team_id": hold.team_id,
            "amount": hold.amount,
            "expires": _micros(hold.expires_at),
            "request_id": hold.request_id,
        },
        separators=(",", ":"),
    )


def _decode(hold_id: str, raw: str | bytes) -> Hold:
    data = json.loads(raw)
    return Hold(
        id=hold_id,
        team_id=data["team_id"],
        amount=int(data["amount"]),
        expires_at=datetime.fromtimestamp(data["expires"] / 1_000_000, UTC),
        request_id=data["request_id"],
    )


class RedisHoldBook:
    def __init__(self, url: str, namespace: str = "creditledger:holds") -> None:
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self.namespace = namespace
        self._place = self.client.register_script(_PLACE)
        self._total = self.client.register_script(_TOTAL)
        self._release = self.client.register_script(_RELEASE)
        self._release_requests = self.client.register_script(_RELEASE_REQUESTS)

    def _team_key(self, team_id: str) -> str:
        return f"{self.namespace}:team:{team_id}"

    def _hold_key(self, hold_id: str) -> str:
        return f"{self.namespace}:hold:{hold_id}"

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except RedisError as exc:
            raise ServiceUnavailable(UNREACHABLE) from exc

    def place(self, hold: Hold, cap: Nanos | None, now: datetime) -> Placement:
        ttl_ms = max(1, (_micros(hold.expires_at) - _micros(now)) // 1000)
        answer = self._run(
            self._place,
            [self._team_key(hold.team_id), self._hold_key(hold.id)],
            [
                _micros(now),
                hold.id,
                _encode(hold),
                hold.amount,
                -1 if cap is None else cap,
                hold.request_id or "",
                ttl_ms,
            ],
        )
        held = int(answer[0])
        if len(answer) == 1:
            return Placement(None, held)
        hold_id, raw = answer[1], answer[2]
        hold_id = hold_id.decode() if isinstance(hold_id, bytes) else hold_id
        return Placement(hold if hold_id == hold.id else _decode(hold_id, raw), held)

    def open_total(self, team_id: str, now: datetime) -> Nanos:
        return int(self._run(self._total, [self._team_key(team_id)], [_micros(now)]))

    def release(self, hold_id: str, now: datetime) -> Hold | None:
        raw = self._run(self._release, [self._hold_key(hold_id)], [_micros(now), hold_id])
        return None if not raw else _decode(hold_id, raw)

    def release_requests(self, team_id: str, request_ids: list[str], now: datetime) -> int:
        if not request_ids:
            return 0
        return int(
            self._run(
                self._release_requests,
                [self._team_key(team_id)],
                [_micros(now), f"{self.namespace}:hold:", *request_ids],
            )
        )
