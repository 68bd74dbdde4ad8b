"""Holds: an allowed authorization with an estimate sets its cost aside, so a prepaid-only
team can not overshoot its credit however many requests it starts at once."""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.holds.memory import MemoryHoldBook
from creditledger.adapters.holds.redis import RedisHoldBook
from creditledger.bootstrap import build_context, change_counter, change_feed
from creditledger.domain.accounts import BillingMode, Principal, TokenKind
from creditledger.domain.errors import InvalidRequest, ServiceUnavailable
from creditledger.domain.grants import UsageScope
from creditledger.domain.holds import Hold, Placement, fits
from creditledger.services.authorize import Authorizer, Decision
from creditledger.services.context import Context
from creditledger.services.ports import HoldBook
from creditledger.services.usage import ingest_usage
from tests.conftest import make_settings
from tests.helpers import Platform, bearer, event, price, set_billing, sign_up

REDIS_URL = os.environ.get("CREDITLEDGER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("CREDITLEDGER_REQUIRE_POSTGRES") == "1"
GATEWAY = Principal(TokenKind.SERVICE, "tok_gateway", name="gateway")
LLAMA = UsageScope("serverless", "llama")
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        client.close()
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required but does not answer at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis does not answer at {REDIS_URL}")
    client.close()
    return REDIS_URL


def prepaid_team(client: TestClient, ctx: Context, credit: str) -> str:
    """A prepaid-only team with ``credit`` of promotional credit, at a tier whose rate
    limit is far above what the tests send, and llama priced at $0.01 a token."""
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "tokens", "0.01"))
    team_id = platform.team().team_id
    platform.promo(team_id, credit)
    set_billing(ctx, team_id, BillingMode.PREPAID, tier_override=4)
    return team_id


def at_once(count: int, call: Callable[[int], Decision]) -> list[Decision]:
    barrier = threading.Barrier(min(count, 32))

    def run(i: int) -> Decision:
        if i < 32:
            barrier.wait()
        return call(i)

    with ThreadPoolExecutor(max_workers=32) as pool:
        return list(pool.map(run, range(count)))


def test_a_hundred_requests_on_one_dollar_hold_exactly_twenty_then_usage_frees_four(
    client: TestClient, ctx: Context
) -> None:
    team_id = prepaid_team(client, ctx, "1.00")
    authorizer = Authorizer(ctx)
    first = at_once(
        100,
        lambda i: authorizer.authorize(GATEWAY, team_id, LLAMA, f"req-{i}", {"amount": "0.05"}),
    )
    allowed = [d for d in first if d.allowed]
    assert len(allowed) == 20
    assert {d.reason for d in first if not d.allowed} == {"insufficient_credits"}
    assert all(d.hold is not None and d.hold.amount == 50_000_000 for d in allowed)
    assert ctx.holds.open_total(team_id, ctx.clock.now()) == 1_000_000_000

    # Each request really cost $0.04: charging it ends its hold.
    request_ids = [d.hold.request_id or "" for d in allowed if d.hold]
    events = [event(team_id, rid, ctx.clock.now(), tokens=4) for rid in request_ids]
    ingest_usage(ctx, GATEWAY, events)
    assert ctx.holds.open_total(team_id, ctx.clock.now()) == 0

    second = at_once(
        100,
        lambda i: authorizer.authorize(GATEWAY, team_id, LLAMA, f"again-{i}", {"amount": "0.05"}),
    )
    assert sum(d.allowed for d in second) == 4  # $0.20 left


def test_an_estimate_in_quantities_is_priced_like_its_usage(
    client: TestClient, ctx: Context
) -> None:
    team_id = prepaid_team(client, ctx, "1.00")
    decision = Authorizer(ctx).authorize(
        GATEWAY, team_id, LLAMA, "r1", {"quantities": {"tokens": 30}}
    )
    assert decision.allowed and decision.hold is not None
    assert decision.hold.amount == 300_000_000
    assert decision.available == 700_000_000
    too_much = Authorizer(ctx).authorize(
        GATEWAY, team_id, LLAMA, "r2", {"quantities": {"tokens": 71}}
    )
    assert (too_much.allowed, too_much.reason) == (False, "insufficient_credits")
    with pytest.raises(InvalidRequest):
        Authorizer(ctx).authorize(GATEWAY, team_id, LLAMA, "r3", {"quantities": {"gpu_hours": 1}})


def test_the_same_request_id_holds_once(client: TestClient, ctx: Context) -> None:
    team_id = prepaid_team(client, ctx, "1.00")
    authorizer = Authorizer(ctx)
    first = authorizer.authorize(GATEWAY, team_id, LLAMA, "same", {"amount": "0.40"})
    again = authorizer.authorize(GATEWAY, team_id, LLAMA, "same", {"amount": "0.40"})
    assert first.hold is not None and again.hold is not None
    assert first.hold.id == again.hold.id
    assert ctx.holds.open_total(team_id, ctx.clock.now()) == 400_000_000


def test_pay_as_you_go_is_never_refused_by_holds_but_they_show(
    client: TestClient, ctx: Context
) -> None:
    team_id = prepaid_team(client, ctx, "0.10")
    set_billing(ctx, team_id, BillingMode.PAY_AS_YOU_GO, tier_override=4)
    authorizer = Authorizer(ctx)
    decisions = [
        authorizer.authorize(GATEWAY, team_id, LLAMA, f"r{i}", {"amount": "0.05"}) for i in range(5)
    ]
    assert all(d.allowed for d in decisions)
    assert decisions[-1].available == 0
    assert ctx.holds.open_total(team_id, ctx.clock.now()) == 250_000_000


def test_holds_expire_on_time(client: TestClient, ctx: Context, clock: FixedClock) -> None:
    team_id = prepaid_team(client, ctx, "0.10")
    authorizer = Authorizer(ctx)
    held = authorizer.authorize(GATEWAY, team_id, LLAMA, "r1", {"amount": "0.10"})
    assert held.hold is not None
    assert held.hold.expires_at == clock.now() + timedelta(seconds=ctx.settings.hold_seconds)
    refused = authorizer.authorize(GATEWAY, team_id, LLAMA, "r2", {"amount": "0.01"})
    assert refused.reason == "insufficient_credits"
    clock.advance(timedelta(seconds=ctx.settings.hold_seconds - 1))
    assert not authorizer.authorize(GATEWAY, team_id, LLAMA).allowed
    clock.advance(timedelta(seconds=1))
    assert authorizer.authorize(GATEWAY, team_id, LLAMA, "r3", {"amount": "0.10"}).allowed
    assert ctx.holds.release(held.hold.id, clock.now()) is None  # it ended by expiry


def test_the_api_answers_the_hold_releases_it_once_and_shows_it_on_the_balance(
    client: TestClient, ctx: Context
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "tokens", "0.01"))
    owner = sign_up(client, "ada")
    set_billing(ctx, owner.team_id, BillingMode.PREPAID, tier_override=4)
    body: dict[str, Any] = {
        "team_id": owner.team_id,
        "product": "serverless",
        "model": "llama",
        "request_id": "req-1",
        "estimate": {"quantities": {"tokens": 50}},
    }
    answer = client.post("/v1/authorize", json=body, headers=bearer(platform.service))
    assert answer.status_code == 200, answer.text
    hold = answer.json()["hold"]
    assert hold["amount"] == "0.50"
    assert answer.json()["available"] == "2.50"  # the $3.00 sign-up credit less the hold
    shown = client.get(f"/v1/teams/{owner.team_id}/balance", headers=owner.auth).json()
    assert shown["held"] == "0.50"
    assert shown["available"]["total"] == "3.00"  # a hold is not money

    release = f"/v1/holds/{hold['id']}/release"
    assert client.post(release, headers=owner.auth).status_code == 403
    first = client.post(release, headers=bearer(platform.service))
    again = client.post(release, headers=bearer(platform.service))
    assert first.json() == {"id": hold["id"], "released": True}
    assert again.json() == {"id": hold["id"], "released": False}
    shown = client.get(f"/v1/teams/{owner.team_id}/balance", headers=owner.auth).json()
    assert shown["held"] == "0.00"

    estimates: list[object] = [
        {"amount": 5},
        {"quantities": {}},
        {"amount": "1", "quantities": {}},
        [],
    ]
    for estimate in estimates:
        bad = client.post(
            "/v1/authorize", json=body | {"estimate": estimate}, headers=bearer(platform.service)
        )
        assert bad.status_code == 422, estimate
    long_id = client.post(
        "/v1/authorize", json=body | {"request_id": "x" * 256}, headers=bearer(platform.service)
    )
    assert long_id.status_code == 422


def books(redis_url: str | None) -> list[HoldBook]:
    if redis_url is None:
        return [MemoryHoldBook()]
    namespace = f"test:{uuid.uuid4().hex}"
    return [RedisHoldBook(redis_url, namespace), RedisHoldBook(redis_url, namespace)]


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_hold_ends_exactly_once_under_a_race_of_usage_release_and_expiry(
    backend: str, request: pytest.FixtureRequest
) -> None:
    shared = books(request.getfixturevalue("redis_url") if backend == "redis" else None)
    holds = [
        Hold(f"hold_{i}", "team_x", 10, NOW + timedelta(seconds=1 + i % 2), f"req-{i}")
        for i in range(60)
    ]
    for hold in holds:
        assert shared[0].place(hold, None, NOW).hold == hold
    assert shared[-1].open_total("team_x", NOW) == 600
    ended = 0
    lock = threading.Lock()
    at = NOW + timedelta(seconds=1)  # the even ones expire at this very moment

    def end(i: int) -> None:
        nonlocal ended
        book = shared[i % len(shared)]
        hold = holds[i // 3]
        if i % 3 == 0:
            n = 1 if book.release(hold.id, at) is not None else 0
        else:
            n = book.release_requests("team_x", [hold.request_id or ""], at)
        with lock:
            ended += n

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(end, range(len(holds) * 3)))
    assert ended == 30  # the 30 that had not expired, each once
    assert shared[0].open_total("team_x", at) == 0


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_each_hold_book_places_a_hold_exactly_when_the_domain_says_it_fits(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """The books' atomic check (in Python, and in Lua for Redis) is ``domain.holds.fits``;
    each answers the team's open total before the call, and a request id holds once."""
    book = books(request.getfixturevalue("redis_url") if backend == "redis" else None)[0]
    expires = NOW + timedelta(minutes=1)
    cases = itertools.product((0, 40, 100, 130), (0, 1, 60), (None, 0, 100))
    for n, (open_total, amount, cap) in enumerate(cases):
        team = f"team_{n}"
        if open_total:
            assert book.place(Hold(f"hold_a{n}", team, open_total, expires), None, NOW).hold
        hold = Hold(f"hold_b{n}", team, amount, expires, "req")
        placement = book.place(hold, cap, NOW)
        assert placement == Placement(
            hold if fits(open_total, amount, cap) else None, open_total
        ), (open_total, amount, cap)
        again = book.place(Hold(f"hold_c{n}", team, amount, expires, "req"), cap, NOW)
        if placement.hold is not None:
            assert again == Placement(hold, open_total + amount)


def test_a_hold_the_rate_limit_refuses_is_given_back_at_once(
    client: TestClient, ctx: Context
) -> None:
    team_id = prepaid_team(client, ctx, "1.00")
    set_billing(ctx, team_id, BillingMode.PREPAID, tier_override=0)  # 20 requests a minute
    authorizer = Authorizer(ctx)
    for n in range(20):
        assert authorizer.authorize(GATEWAY, team_id, LLAMA, f"r{n}", {"amount": "0.01"}).hold
    over = authorizer.authorize(GATEWAY, team_id, LLAMA, "r20", {"amount": "0.01"})
    assert (over.reason, over.hold, over.available) == ("rate_limited", None, 800_000_000)
    assert ctx.holds.open_total(team_id, ctx.clock.now()) == 200_000_000


def test_two_processes_share_holds_through_redis(
    client: TestClient, ctx: Context, database_url: str, clock: FixedClock, redis_url: str
) -> None:
    team_id = prepaid_team(client, ctx, "1.00")
    settings = make_settings(database_url, redis_url=redis_url)
    others = [build_context(settings, clock=clock) for _ in range(2)]
    assert all(isinstance(other.holds, RedisHoldBook) for other in others)
    authorizers = [Authorizer(other) for other in others]
    try:
        decisions = at_once(
            60,
            lambda i: authorizers[i % 2].authorize(
                GATEWAY, team_id, LLAMA, f"r{i}", {"amount": "0.10"}
            ),
        )
        assert sum(d.allowed for d in decisions) == 10
        assert others[0].holds.open_total(team_id, clock.now()) == 1_000_000_000
    finally:
        for other in others:
            other.uow.dispose()


def test_without_the_hold_book_only_holds_of_prepaid_teams_are_refused(
    client: TestClient, ctx: Context, database_url: str, clock: FixedClock
) -> None:
    team_id = prepaid_team(client, ctx, "1.00")
    down = build_context(
        make_settings(database_url, redis_url="redis://127.0.0.1:1/0"), clock=clock
    )
    try:
        authorizer = Authorizer(down)
        assert authorizer.authorize(GATEWAY, team_id, LLAMA).allowed  # on credit alone
        with pytest.raises(ServiceUnavailable):
            authorizer.authorize(GATEWAY, team_id, LLAMA, "r1", {"amount": "0.05"})
        unknown = UsageScope("serverless", "no-such-model")
        refused = authorizer.authorize(GATEWAY, team_id, unknown, "r0", {"amount": "0.05"})
        assert (refused.reason, refused.hold) == ("unknown_model", None)  # no hold needed
        set_billing(ctx, team_id, BillingMode.PAY_AS_YOU_GO, tier_override=4)
        payg = authorizer.authorize(GATEWAY, team_id, LLAMA, "r2", {"amount": "0.05"})
        assert payg.allowed and payg.hold is None
    finally:
        down.uow.dispose()


def test_a_decision_with_an_estimate_sees_the_credit_of_its_moment_after_a_plain_one(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    """A hold reuses the credit side of the team's last plain decision only while what
    it was worked out from stands: a new grant, or a grant's end passing, is seen."""
    team_id = prepaid_team(client, ctx, "1.00")
    platform = Platform.on(client, ctx)
    # As a server builds it: decisions from memory, kept while nothing they used moves.
    authorizer = Authorizer(ctx, change_feed(ctx.settings), change_counter(ctx.settings))
    try:
        _holds_see_the_credit_of_their_moment(authorizer, platform, team_id, clock)
    finally:
        authorizer.close()


def _holds_see_the_credit_of_their_moment(
    authorizer: Authorizer, platform: Platform, team_id: str, clock: FixedClock
) -> None:
    assert authorizer.authorize(GATEWAY, team_id, LLAMA).available == 1_000_000_000
    assert authorizer.authorize(GATEWAY, team_id, LLAMA).available == 1_000_000_000  # kept

    platform.promo(team_id, "0.50", expires_at=clock.now() + timedelta(hours=1))
    deadline = time.monotonic() + 5  # PostgreSQL's notice reaches memory a moment later
    while authorizer.authorize(GATEWAY, team_id, LLAMA).available != 1_500_000_000:
        assert time.monotonic() < deadline, "the new grant was never seen"
        time.sleep(0.01)
    assert authorizer.authorize(GATEWAY, team_id, LLAMA, "r1", {"amount": "1.20"}).allowed
    assert authorizer.authorize(GATEWAY, team_id, LLAMA).available == 300_000_000

    clock.advance(timedelta(hours=2))  # the $0.50 grant has ended, the hold has expired
    late = authorizer.authorize(GATEWAY, team_id, LLAMA, "r2", {"amount": "1.20"})
    assert not late.allowed
    assert late.reason == "insufficient_credits"
    assert late.available == 1_000_000_000


def test_decisions_that_all_hold_share_the_credit_side_while_it_stands(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    """A gateway that sends an estimate with every request never asks a plain decision:
    its holds keep the credit side themselves, and still see a grant's end."""
    team_id = prepaid_team(client, ctx, "1.00")
    platform = Platform.on(client, ctx)
    platform.promo(team_id, "0.50", expires_at=clock.now() + timedelta(minutes=5))
    authorizer = Authorizer(ctx, change_feed(ctx.settings), change_counter(ctx.settings))
    try:
        first = authorizer.authorize(GATEWAY, team_id, LLAMA, "a1", {"amount": "0.40"})
        second = authorizer.authorize(GATEWAY, team_id, LLAMA, "a2", {"amount": "0.40"})
        assert (first.allowed, first.available) == (True, 1_100_000_000)
        assert (second.allowed, second.available) == (True, 700_000_000)

        clock.advance(timedelta(minutes=6))  # the $0.50 grant has ended, the holds have not
        third = authorizer.authorize(GATEWAY, team_id, LLAMA, "a3", {"amount": "0.40"})
        assert (third.allowed, third.reason) == (False, "insufficient_credits")
        assert third.available == 200_000_000
        fourth = authorizer.authorize(GATEWAY, team_id, LLAMA, "a4", {"amount": "0.20"})
        assert (fourth.allowed, fourth.available) == (True, 0)
    finally:
        authorizer.close()
