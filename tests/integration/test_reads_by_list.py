"""Reads by a list of ids answer the same whatever the list's length: up to
``bulk.LOOKUPS`` values PostgreSQL searches the index once per value, past it the values
are hashed (docs/decisions/0034); SQLite reads them in chunks. Locks come in id order."""

from __future__ import annotations

import pytest

from creditledger.adapters.db import bulk
from creditledger.adapters.db import tables as t
from creditledger.services.context import Context
from tests.conftest import START


@pytest.mark.parametrize("count", [1, bulk.LOOKUPS, bulk.LOOKUPS + 1, 3 * bulk.LOOKUPS])
def test_a_list_of_any_length_reads_and_locks_the_same_teams(ctx: Context, count: int) -> None:
    with ctx.uow() as uow:
        conn = uow.conn  # type: ignore[attr-defined]
        made = sorted(f"team_list_{count}_{n:04d}" for n in range(count))
        for team_id in made:
            conn.execute(t.teams.insert().values(id=team_id, name="list", created_at=START))
        asked = [*reversed(made), made[0], "team_missing"]  # out of order, twice, missing

        locked = uow.teams.lock_many(asked)
        revisions, _ = uow.teams.revisions_with_price_version(asked)
        usage = uow.teams.lock_for_usage(asked)

        assert list(locked) == made  # in id order
        assert sorted(revisions) == made
        assert sorted(usage.teams) == made
        assert sorted(usage.credit) == made
