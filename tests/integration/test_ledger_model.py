"""The ledger against a model of plain integers (docs/quality.md "Model-based").

A Hypothesis state machine signs teams up and drives operator grants (scoped, expiring),
voids, promo-code redemptions, purchases whose sandbox webhooks arrive duplicated and
out of order, usage (with duplicates and late events inside the window), clock ticks and
the expiry job through the API. A reference model keeps, per team, each grant's remaining
credit and the unpaid balance as integers, charging usage in the order of consumption.
After every step the API must show exactly the model's figures, and every invariant
(``creditledger verify``'s checks, I1–I7 and I9) must hold.

A late event re-allocates the team's later usage in time order: for it the model
checks that the team's credit and unpaid balance move by exactly the event's charge, then
takes the ledger's split of the credit as its own (I4 and I7 check that split).

The default run is small, for CI; ``CREDITLEDGER_MODEL_EXAMPLES`` (and
``CREDITLEDGER_MODEL_STEPS``) raise it for a long run (``make soak``).

Seen to catch planted bugs (shrinking off, SQLite, default 10 examples, six runs each
unless said): prepaid ordered before promotional in ``consumption_order_key`` — caught
6 of 6; a scoped grant paying for any model in ``availability.is_usable`` — caught 6 of
6; the late-arrival window halved in ``late_arrival_cutoff`` — caught 1 of 5, so that
one is for the long run. Before the first team started with promotional and prepaid
credit (``first_team_credit``) and usage was weighted up, the order flip passed 6
examples and was caught 4 times in 5 at 20.
"""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.payments.delivery import ManualOutbox
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.adapters.payments.sandbox_store import SqlSandboxStore
from creditledger.bootstrap import build_context
from creditledger.entrypoints.api.app import create_app
from creditledger.services.context import Context
from creditledger.services.expiry import expire_credits
from tests.conftest import SANDBOX_SECRET, START, _empty_pg, make_settings
from tests.helpers import (
    Account,
    Platform,
    bearer,
    event,
    nanos,
    operator_grant,
    price,
    unpaid_of,
)
from tests.payments import deliver, outbox, pay, start_purchase

EXAMPLES = int(os.environ.get("CREDITLEDGER_MODEL_EXAMPLES", "10"))
STEPS = int(os.environ.get("CREDITLEDGER_MODEL_STEPS", "12"))
WINDOW = timedelta(hours=1)  # the default late-arrival window
REQUEST = nanos("0.01")  # the price of one llama or mistral request
_runs = itertools.count()
_codes = itertools.count()


def fresh_start() -> datetime:
    """A start time after every earlier run's: runs share a database, and its clocks
    only move forward."""
    return START + timedelta(days=40 * next(_runs))


@dataclass
class ModelGrant:
    id: str
    promotional: bool
    remaining: int
    effective_at: datetime
    expires_at: datetime | None = None
    llama_only: bool = False
    voided: bool = False

    def order_key(self) -> tuple[Any, ...]:
        """The order of consumption: promotional first; expiring first; scoped first;
        soonest expiry; earliest start (the id, last, is applied by a stable sort before)."""
        return (
            not self.promotional,
            self.expires_at is None,
            not self.llama_only,
            self.expires_at or datetime.max.replace(tzinfo=self.effective_at.tzinfo),
            self.effective_at,
        )

    def pays_for(self, model: str, at: datetime, now: datetime) -> bool:
        return (
            self.remaining > 0
            and not self.voided
            and self.effective_at <= at
            and (
                self.expires_at is None or (at < self.expires_at and now < self.expires_at + WINDOW)
            )
            and (not self.llama_only or model == "llama")
        )


@dataclass
class ModelTeam:
    account: Account
    grants: list[ModelGrant] = field(default_factory=list)
    unpaid: int = 0
    latest: tuple[datetime, str] | None = None
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)

    def credit(self) -> int:
        return sum(g.remaining for g in self.grants)


class Ledger:
    """The service under test on one backend, the model beside it, and one method per
    step. Steps name teams and grants by index, so a recorded script replays anywhere."""

    def __init__(self, database_url: str, base: datetime | None = None) -> None:
        self.base = base or fresh_start()
        self.clock = FixedClock(self.base)
        self.engine = create_engine(database_url)
        self.sandbox = SandboxProvider(
            SANDBOX_SECRET,
            "http://testserver",
            ManualOutbox(SANDBOX_SECRET),
            self.clock.now,
            store=SqlSandboxStore(self.engine),
        )
        self.ctx: Context = build_context(
            make_settings(database_url), clock=self.clock, payments=self.sandbox
        )
        self.client = TestClient(create_app(self.ctx), raise_server_exceptions=False)
        self.client.__enter__()
        self.platform = Platform.on(self.client, self.ctx)
        self.platform.put_prices(
            price("llama", "requests", "0.01"), price("mistral", "requests", "0.01")
        )
        self.clock.at = self.base + 2 * WINDOW  # room for late events after the prices
        self.teams: list[ModelTeam] = []
        self.events = itertools.count()

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.ctx.uow.dispose()
        self.engine.dispose()

    # --- steps -------------------------------------------------------------------------

    def sign_up(self) -> None:
        self.teams.append(ModelTeam(self.platform.team()))

    def _team(self, index: int) -> ModelTeam | None:
        return self.teams[index % len(self.teams)] if self.teams else None

    def _new_grant(self, team: ModelTeam) -> str:
        known = {g.id for g in team.grants}
        (new,) = set(self.platform.remaining(team.account.team_id)) - known
        return new

    def grant(self, team_index: int, cents: int, llama_only: bool, expires_in: int | None) -> None:
        team = self._team(team_index)
        if team is None:
            return
        now = self.clock.now()
        fields: dict[str, Any] = {}
        if llama_only:
            fields["scope"] = {"models": ["llama"]}
        expires_at = None if expires_in is None else now + timedelta(minutes=expires_in)
        if expires_at is not None:
            fields["expires_at"] = expires_at.isoformat()
        amount = f"{cents // 100}.{cents % 100:02d}"
        response = operator_grant(
            self.client, self.platform.operator, team.account.team_id, amount, **fields
        )
        assert response.status_code == 201, response.text
        team.grants.append(
            ModelGrant(
                response.json()["id"],
                True,
                cents * nanos("0.01"),
                now.replace(microsecond=0),
                expires_at,
                llama_only,
            )
        )

    def void(self, team_index: int, grant_index: int) -> None:
        team = self._team(team_index)
        live = [g for g in team.grants if not g.voided] if team else []
        if team is None or not live:
            return
        grant = live[grant_index % len(live)]
        response = self.client.post(
            f"/v1/teams/{team.account.team_id}/grants/{grant.id}/void",
            headers=bearer(self.platform.operator),
        )
        assert response.status_code == 200, response.text
        grant.voided = True
        grant.remaining = 0

    def redeem(self, team_index: int, cents: int) -> None:
        team = self._team(team_index)
        if team is None:
            return
        code = f"MODEL{self.base:%Y%m%d}X{next(_codes)}"
        amount = f"{cents // 100}.{cents % 100:02d}"
        created = self.client.post(
            "/v1/promo-codes",
            json={"amount": amount, "max_redemptions": 5, "code": code},
            headers=bearer(self.platform.operator),
        )
        assert created.status_code == 201, created.text
        redeemed = self.client.post(
            f"/v1/teams/{team.account.team_id}/promo-codes/redeem",
            json={"code": code},
            headers=team.account.auth,
        )
        assert redeemed.status_code in (200, 201), redeemed.text
        now = self.clock.now()
        team.grants.append(
            ModelGrant(
                self._new_grant(team), True, cents * nanos("0.01"), now.replace(microsecond=0)
            )
        )

    def purchase(self, team_index: int, dollars: tuple[int, ...], order: list[int]) -> None:
        """Buy ``dollars`` (each a purchase), pay them all, then deliver every webhook
        twice in the order ``order`` draws from."""
        team = self._team(team_index)
        if team is None:
            return
        for whole in dollars:
            started = start_purchase(self.client, team.account, f"{whole}.00")
            assert started.status_code == 201, started.text
            pay(self.client, started.json()["checkout_url"])
        waiting = outbox(self.sandbox).take() * 2
        shuffled = [waiting.pop(i % len(waiting)) for i in order[: len(waiting)]] + waiting
        for body, headers in shuffled:
            response = self.client.post("/v1/webhooks/sandbox", content=body, headers=headers)
            assert response.status_code == 200, response.text
        assert deliver(self.client, self.sandbox) == []
        now = self.clock.now()
        known = {g.id for g in team.grants}
        shown = self.platform.remaining(team.account.team_id)
        fresh = [gid for gid in shown if gid not in known]
        # Which new grant is which purchase is the ledger's to say: match them by amount.
        assert sorted(shown[gid] for gid in fresh) == sorted(d * nanos("1.00") for d in dollars)
        for gid in fresh:
            team.grants.append(ModelGrant(gid, False, shown[gid], now.replace(microsecond=0)))

    def usage(
        self, team_index: int, requests: int, llama: bool, late_minutes: int, again: bool
    ) -> None:
        team = self._team(team_index)
        if team is None:
            return
        if again and team.sent:
            # A duplicate delivery of an event already charged: nothing changes.
            raw = list(team.sent.values())[requests % len(team.sent)]
            answer = self.platform.usage(raw)
            assert (answer["accepted"], answer["duplicates"]) == (0, 1), answer
            return
        now = self.clock.now()
        at = now - timedelta(minutes=late_minutes)
        model = "llama" if llama else "mistral"
        event_id = f"ev{next(self.events):06d}"
        raw = event(team.account.team_id, event_id, at, model=model, requests=requests)
        late = team.latest is not None and (at, event_id) < team.latest
        before = (team.credit(), team.unpaid)
        answer = self.platform.usage(raw)
        assert answer["accepted"] == 1, answer
        team.sent[event_id] = raw
        team.latest = max(team.latest or (at, event_id), (at, event_id))
        charge = requests * REQUEST
        if late:
            self._take_the_ledgers_split(team, before, charge)
            return
        left = charge
        eligible = [g for g in team.grants if g.pays_for(model, at, now)]
        eligible.sort(key=lambda g: g.id, reverse=True)
        eligible.sort(key=ModelGrant.order_key)
        for g in eligible:
            take = min(left, g.remaining)
            g.remaining -= take
            left -= take
        team.unpaid += left

    def _take_the_ledgers_split(
        self, team: ModelTeam, before: tuple[int, int], charge: int
    ) -> None:
        shown = self.platform.remaining(team.account.team_id)
        unpaid = unpaid_of(self.ctx, team.account.team_id)
        credit_before, unpaid_before = before
        assert (credit_before - sum(shown.values())) + (unpaid - unpaid_before) == charge
        for g in team.grants:
            assert shown[g.id] <= g.remaining or not g.voided
            g.remaining = shown[g.id]
        team.unpaid = unpaid

    def tick(self, minutes: int) -> None:
        self.clock.at = self.clock.now() + timedelta(minutes=minutes)

    def expire(self) -> None:
        expire_credits(self.ctx)
        now = self.clock.now()
        for team in self.teams:
            for g in team.grants:
                if g.expires_at is not None and g.expires_at + WINDOW <= now:
                    g.remaining = 0

    # --- checks ------------------------------------------------------------------------

    def snapshot(self) -> list[tuple[list[int], int]]:
        """What the ledger says each team holds: each grant's remaining in the order
        granted, and the unpaid balance."""
        out = []
        for team in self.teams:
            shown = self.platform.remaining(team.account.team_id)
            out.append(
                ([shown[g.id] for g in team.grants], unpaid_of(self.ctx, team.account.team_id))
            )
        return out

    def check(self) -> None:
        expected = [([g.remaining for g in t.grants], t.unpaid) for t in self.teams]
        assert self.snapshot() == expected
        assert list(self.ctx.invariants.violations()) == []


# --- the steps, as Hypothesis draws them -------------------------------------------------

TEAM = st.integers(0, 3)
CENTS = st.sampled_from([5, 30, 100, 250])
EXPIRY = st.none() | st.sampled_from([10, 45, 90])
SIGN_UP = st.tuples(st.just("sign_up"))
GRANT = st.tuples(st.just("grant"), TEAM, CENTS, st.booleans(), EXPIRY)
VOID = st.tuples(st.just("void"), TEAM, st.integers(0, 7))
REDEEM = st.tuples(st.just("redeem"), TEAM, CENTS)
PURCHASE = st.tuples(
    st.just("purchase"),
    TEAM,
    st.lists(st.sampled_from([10, 25]), min_size=1, max_size=2).map(tuple),
    st.lists(st.integers(0, 7), max_size=8),
)
USAGE = st.tuples(
    st.just("usage"),
    TEAM,
    st.integers(1, 120),
    st.booleans(),
    st.sampled_from([0, 0, 0, 5, 40]),
    st.sampled_from([False, False, False, True]),
)
TICK = st.tuples(st.just("tick"), st.sampled_from([5, 20, 50]))
EXPIRE = st.tuples(st.just("expire"))
# Weighted towards what tells a wrong order from the right one: usage on a team that holds
# promotional and prepaid credit at once. Hypothesis draws a branch of ``one_of`` evenly,
# so the weights are buckets of one integer; low buckets come first, which is also where
# shrinking goes, so a failure shrinks towards usage and grants rather than sign-ups.
WEIGHTED: list[tuple[st.SearchStrategy[tuple[Any, ...]], int]] = [
    (USAGE, 6),
    (GRANT, 2),
    (PURCHASE, 2),
    (REDEEM, 1),
    (TICK, 1),
    (EXPIRE, 1),
    (VOID, 1),
    (SIGN_UP, 1),
]
BUCKETS = [strategy for strategy, weight in WEIGHTED for _ in range(weight)]
STEP = st.integers(0, len(BUCKETS) - 1).flatmap(lambda n: BUCKETS[n])


def apply(ledger: Ledger, step: tuple[Any, ...]) -> None:
    getattr(ledger, step[0])(*step[1:])


class LedgerModel(RuleBasedStateMachine):
    database_url: str

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(self.database_url)
        self.ledger.sign_up()

    @initialize(
        promo=st.sampled_from([None, 30, 250]),
        llama_only=st.booleans(),
        expires_in=EXPIRY,
        prepaid=st.sampled_from([(), (10,)]),
    )
    def first_team_credit(
        self,
        promo: int | None,
        llama_only: bool,
        expires_in: int | None,
        prepaid: tuple[int, ...],
    ) -> None:
        """Most runs start with the first team holding promotional and prepaid credit at
        once, where a wrong consumption order shows on the first charge."""
        if promo is not None:
            self.ledger.grant(0, promo, llama_only, expires_in)
        if prepaid:
            self.ledger.purchase(0, prepaid, [])

    @rule(step=STEP)
    def take(self, step: tuple[Any, ...]) -> None:
        apply(self.ledger, step)

    @invariant()
    def the_ledger_says_what_the_model_says(self) -> None:
        self.ledger.check()

    def teardown(self) -> None:
        self.ledger.close()


@pytest.mark.soak
def test_the_ledger_matches_a_model_of_plain_integers(database_url: str) -> None:
    class Machine(LedgerModel):
        pass

    Machine.database_url = database_url
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


@pytest.mark.soak
def test_the_same_steps_give_the_same_balances_on_sqlite_and_postgresql(
    request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'replay.db'}"
    shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "replay.db")
    pg_url: str = request.getfixturevalue("pg_database")
    _empty_pg(pg_url)

    @settings(
        max_examples=max(3, EXAMPLES // 5),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(steps=st.lists(STEP, min_size=1, max_size=STEPS))
    def replay(steps: list[tuple[Any, ...]]) -> None:
        base = fresh_start()
        ledgers = [Ledger(sqlite_url, base), Ledger(pg_url, base)]
        try:
            for ledger in ledgers:
                ledger.sign_up()
                for step in steps:
                    apply(ledger, step)
                ledger.check()
            assert ledgers[0].snapshot() == ledgers[1].snapshot()
        finally:
            for ledger in ledgers:
                ledger.close()

    replay()
