"""The team lock a usage batch takes reads, with the locks, which teams have a live
webhook and which have auto-recharge on; those two reads agree with the notices' and
the recharges' own, on both backends, for every combination of the two."""

from __future__ import annotations

import itertools

from creditledger.adapters.db import tables as t
from creditledger.domain.money import dollars
from creditledger.domain.notices import Webhook
from creditledger.domain.recharge import AutoRecharge
from creditledger.services.context import Context
from tests.conftest import START

WEBHOOK_STATES = ("none", "live", "disabled")
RECHARGE_STATES = ("none", "on", "off")


def test_the_usage_lock_reads_watchers_and_recharging_as_their_own_reads(ctx: Context) -> None:
    with ctx.uow() as uow:
        conn = uow.conn  # type: ignore[attr-defined]
        made: dict[str, tuple[str, str]] = {}
        for webhook, recharge in itertools.product(WEBHOOK_STATES, RECHARGE_STATES):
            team_id = uow.new_id("team")
            conn.execute(t.teams.insert().values(id=team_id, name="locks", created_at=START))
            made[team_id] = (webhook, recharge)
            if webhook != "none":
                uow.notices.save_webhook(
                    Webhook(team_id, "https://example.test/h", None, "s" * 32, START), START
                )
            if webhook == "disabled":
                uow.notices.disable_webhook(team_id, "failing", START)
            if recharge != "none":
                settings = AutoRecharge(recharge == "on", dollars("5"), dollars("25"))
                uow.recharges.save_settings(team_id, settings, START)
        asked = [*made, "team_missing"]

        locks = uow.teams.lock_for_usage(asked)

        assert sorted(locks.teams) == sorted(made)
        assert locks.watched == uow.notices.teams_with_webhooks(asked)
        assert locks.recharging == set(uow.recharges.enabled_among(asked))
        assert locks.watched == {i for i, (w, _) in made.items() if w == "live"}
        assert locks.recharging == {i for i, (_, r) in made.items() if r == "on"}
        assert uow.teams.lock_for_usage(["team_missing"]).price_version is None
