"""How long ``allocate()`` takes to split one charge across a team's grants.

Run: ``.venv/bin/python bench/allocate.py``. Prints one line per team size and
appends it to ``bench/results/allocate.txt``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from creditledger.domain.consumption import allocate
from creditledger.domain.grants import Grant, GrantKind, GrantSource, Scope, UsageScope
from creditledger.domain.ids import make_id

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RESULTS = Path(__file__).parent / "results" / "allocate.txt"


def grants(count: int) -> list[Grant]:
    out = []
    for i in range(count):
        promotional = i % 5 != 0
        out.append(
            Grant(
                id=make_id("grant", 1_700_000_000_000 + i, i.to_bytes(10)),
                team_id="team_bench",
                kind=GrantKind.PROMOTIONAL if promotional else GrantKind.PREPAID,
                source=GrantSource.MANUAL if promotional else GrantSource.PURCHASE,
                amount=1_000_000_000,
                remaining=1_000_000 * (i % 7 + 1),
                scope=Scope(models=frozenset({"llama"})) if promotional and i % 2 else None,
                effective_at=NOW - timedelta(days=1),
                expires_at=NOW + timedelta(days=i % 30 + 1) if promotional and i % 3 else None,
                voided_at=None,
                created_at=NOW,
            )
        )
    return out


def main() -> None:
    usage = UsageScope("serverless", "llama")
    lines = []
    for size in (10, 100, 1_000):
        team = grants(size)
        rounds = 2_000 if size <= 100 else 200
        started = time.perf_counter()
        for _ in range(rounds):
            allocate(team, 50_000_000, usage, NOW)
        per_call = (time.perf_counter() - started) / rounds
        lines.append(f"allocate over {size:>5} grants: {per_call * 1e6:9.1f} µs per charge")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(f"# {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        out.writelines(line + "\n" for line in lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
