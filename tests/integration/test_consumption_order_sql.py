"""The SQL ORDER BY of SqlGrants.for_team agrees with domain.consumption."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditledger.domain.consumption import in_consumption_order
from creditledger.domain.grants import GrantKind, GrantSource, Scope
from creditledger.domain.money import dollars
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant
from tests.builders import ids
from tests.conftest import START
from tests.helpers import grant_any

# Few distinct values per key, so most grants tie on several keys and the later
# keys (effective_at, then id descending) decide.
EFFECTIVE = [START - timedelta(days=2), START - timedelta(days=1)]
EXPIRES = [None, START + timedelta(days=3), START + timedelta(days=9)]
SCOPES = [None, Scope(models=frozenset({"llama-3.1-70b"}))]

new_grants = st.lists(
    st.builds(
        lambda promotional, effective, expires, scope: NewGrant(
            kind=GrantKind.PROMOTIONAL if promotional else GrantKind.PREPAID,
            source=GrantSource.MANUAL if promotional else GrantSource.PURCHASE,
            amount=dollars("1.00"),
            scope=scope if promotional else None,
            effective_at=effective,
            expires_at=expires if promotional else None,
        ),
        st.booleans(),
        st.sampled_from(EFFECTIVE),
        st.sampled_from(EXPIRES),
        st.sampled_from(SCOPES),
    ),
    min_size=1,
    max_size=24,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batch=new_grants)
def test_the_sql_order_is_the_domain_order(ctx: Context, batch: list[NewGrant]) -> None:
    with ctx.uow() as uow:
        team_id = uow.new_id("team")
        uow.teams.add(team_id, "order", START)
        for new in batch:
            grant_any(uow, ctx, team_id, new)
        from_sql = uow.grants.for_team(team_id)
        uow.commit()
    assert len(from_sql) == len(batch)
    assert ids(from_sql) == ids(in_consumption_order(from_sql))


def test_grants_tied_on_every_date_come_back_largest_id_first(ctx: Context) -> None:
    tied = NewGrant(
        GrantKind.PROMOTIONAL,
        GrantSource.MANUAL,
        dollars("1.00"),
        effective_at=EFFECTIVE[0],
        expires_at=EXPIRES[1],
    )
    with ctx.uow() as uow:
        team_id = uow.new_id("team")
        uow.teams.add(team_id, "ties", START)
        made = [grant_any(uow, ctx, team_id, tied).id for _ in range(30)]
        from_sql = ids(uow.grants.for_team(team_id))
        uow.commit()
    assert from_sql == sorted(made, reverse=True)
