"""The SQL that selects usable credit and expiry write-offs agrees with
domain.availability, on both backends.

Grants are written in every combination that matters (voided or not, spent or not,
scoped or not, started, expiring and queried on the same hours so that every boundary
is hit) inside a transaction that is never committed: the rows need not come from a
real history, only be stored as they may be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.repositories import usable_at
from creditledger.adapters.db.rows import grant_to_row
from creditledger.domain.availability import (
    expiry_due,
    is_usable,
    late_arrival_cutoff,
    usable_credit,
)
from creditledger.domain.grants import Grant, GrantKind, GrantSource, Scope
from creditledger.domain.money import dollars
from creditledger.domain.recharge import AutoRecharge
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork
from tests.conftest import START

HOUR = timedelta(hours=1)
AMOUNT = dollars("1.00")
LLAMA_ONLY = Scope(models=frozenset({"llama-3.1-70b"}))


@dataclass(frozen=True)
class Spec:
    promotional: bool
    remaining: int
    starts: int
    lasts: int | None
    voided: bool
    scoped: bool

    def grant(self, grant_id: str, team_id: str) -> Grant:
        effective = START + self.starts * HOUR
        promotional = self.promotional
        return Grant(
            id=grant_id,
            team_id=team_id,
            kind=GrantKind.PROMOTIONAL if promotional else GrantKind.PREPAID,
            source=GrantSource.MANUAL if promotional else GrantSource.PURCHASE,
            amount=AMOUNT,
            remaining=self.remaining,
            scope=LLAMA_ONLY if promotional and self.scoped else None,
            effective_at=effective,
            expires_at=effective + self.lasts * HOUR if promotional and self.lasts else None,
            voided_at=START - HOUR if self.voided else None,
            created_at=START - 4 * HOUR,
        )


specs = st.lists(
    st.builds(
        Spec,
        st.booleans(),
        st.sampled_from([0, AMOUNT // 2, AMOUNT]),
        st.integers(-3, 1),
        st.one_of(st.none(), st.integers(1, 4)),
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)
hours = st.integers(-2, 5).map(lambda n: START + n * HOUR)
windows = st.sampled_from([timedelta(0), HOUR, 2 * HOUR])

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


Check = Callable[[UnitOfWork, str, list[Grant]], None]


def _scratch_team(ctx: Context, made: list[Spec], check: Check) -> None:
    """Store ``made`` for a new team, run ``check(uow, team_id, grants)`` on the
    grants as read back, and roll back (the unit of work is never committed)."""
    with ctx.uow() as uow:
        conn = _conn(uow)
        team_id = uow.new_id("team")
        conn.execute(t.teams.insert().values(id=team_id, name="availability", created_at=START))
        for n, spec in enumerate(made):
            grant = spec.grant(f"{team_id}_{n:02d}", team_id)
            conn.execute(t.grants.insert().values(**grant_to_row(grant), note=None))
        grants = uow.grants.for_team(team_id)
        assert len(grants) == len(made)
        check(uow, team_id, grants)


def _conn(uow: UnitOfWork) -> sa.Connection:
    conn: sa.Connection = uow.conn  # type: ignore[attr-defined]
    return conn


@SETTINGS
@given(made=specs, now=hours)
def test_the_sql_of_usable_credit_is_the_domain_rule(
    ctx: Context, made: list[Spec], now: datetime
) -> None:
    def check(uow: UnitOfWork, team_id: str, grants: list[Grant]) -> None:
        g = t.grants
        from_sql = (
            _conn(uow)
            .execute(sa.select(g.c.id).where(g.c.team_id == team_id, usable_at(now)))
            .scalars()
        )
        assert set(from_sql) == {x.id for x in grants if is_usable(x, None, now)}

    _scratch_team(ctx, made, check)


@SETTINGS
@given(made=specs, now=hours)
def test_the_recharge_scan_finds_a_team_exactly_when_its_usable_credit_is_below_threshold(
    ctx: Context, made: list[Spec], now: datetime
) -> None:
    def check(uow: UnitOfWork, team_id: str, grants: list[Grant]) -> None:
        usable = usable_credit(grants, None, now)
        for threshold, below in ((usable + 1, True), (usable, False)):
            uow.recharges.save_settings(
                team_id, AutoRecharge(True, threshold, threshold + dollars("10.00"), None), now
            )
            assert (team_id in uow.recharges.teams_below_threshold(now, 10_000)) is below

    _scratch_team(ctx, made, check)


@SETTINGS
@given(made=specs, now=hours, window=windows)
def test_the_sql_of_expiry_write_offs_is_the_domain_rule(
    ctx: Context, made: list[Spec], now: datetime, window: timedelta
) -> None:
    cutoff = late_arrival_cutoff(now, window)

    def check(uow: UnitOfWork, team_id: str, grants: list[Grant]) -> None:
        due = uow.grants.due_for_expiry(cutoff, 10_000)
        from_sql = {grant_id for team, grant_id in due if team == team_id}
        assert from_sql == {x.id for x in grants if expiry_due(x, cutoff)}

    _scratch_team(ctx, made, check)
