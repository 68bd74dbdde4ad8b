"""Posting to the ledger moves every cached balance and records balance_after."""

from __future__ import annotations

from creditledger.domain import ledger
from creditledger.domain.consumption import allocate
from creditledger.domain.grants import GrantKind, GrantSource, UsageScope
from creditledger.domain.history import HistoryFilter
from creditledger.domain.ledger import EntryType
from creditledger.domain.money import dollars
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from tests.conftest import START
from tests.helpers import issue_prepaid, record_usage


def test_a_usage_charge_draws_grants_in_order_and_the_rest_becomes_unpaid(ctx: Context) -> None:
    with ctx.uow() as uow:
        team_id = uow.new_id("team")
        uow.teams.add(team_id, "usage", START)
        promo = issue_grant(
            uow,
            ctx,
            team_id,
            NewGrant(GrantKind.PROMOTIONAL, GrantSource.MANUAL, dollars("1.00")),
            "p",
        )
        prepaid = issue_prepaid(
            uow, ctx, team_id, NewGrant(GrantKind.PREPAID, GrantSource.PURCHASE, dollars("2.00"))
        )
        split = allocate(
            uow.grants.for_team(team_id), dollars("3.50"), UsageScope("serverless", "m"), START
        )
        tx = ledger.charge_usage(team_id, split.draws, split.uncovered, START, "usage", "evt_1")
        tx_id = uow.new_id("txn")
        uow.ledger.post(tx, tx_id, START)
        record_usage(uow, team_id, tx_id, UsageScope("serverless", "m"), split, START)
        uow.commit()

    assert split.draws == ((promo.id, dollars("1.00")), (prepaid.id, dollars("2.00")))
    with ctx.uow(write=False) as uow:
        team = uow.teams.get(team_id)
        grants = {g.id: g.remaining for g in uow.grants.for_team(team_id)}
        credit = uow.teams.credit_balance(team_id)
        history = uow.ledger.history(team_id, HistoryFilter(), None, 50)
    assert team is not None
    assert team.unpaid == dollars("0.50")
    assert grants == {promo.id: 0, prepaid.id: 0}
    assert credit == 0
    # Newest first: the usage postings (unpaid last), then the two grants.
    assert [(e.type, e.amount, e.balance_after) for e in history] == [
        (EntryType.USAGE, -dollars("0.50"), 0),
        (EntryType.USAGE, -dollars("2.00"), 0),
        (EntryType.USAGE, -dollars("1.00"), dollars("2.00")),
        (EntryType.GRANT, dollars("2.00"), dollars("3.00")),
        (EntryType.GRANT, dollars("1.00"), dollars("1.00")),
    ]
    assert history[0].grant_id is None and history[0].kind is None
    assert history[1].kind is GrantKind.PREPAID
