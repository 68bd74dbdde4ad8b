"""Group commit of small usage batches (entrypoints/api/group_commit.py, on both
backends): concurrent single-event POSTs share commits, each answer is its own part of
the group's result and is given after the commit, and a failed group tells every member
the truth and stores none of them."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditledger.domain.errors import ServiceUnavailable
from creditledger.domain.money import dollars, format_amount
from creditledger.domain.recharge import AutoRecharge
from creditledger.entrypoints.api import fast_usage, group_commit
from creditledger.entrypoints.api.routes import usage as usage_routes
from creditledger.services import usage
from creditledger.services.context import Context
from creditledger.services.tokens import authenticate
from tests.helpers import Platform, bearer, event, price


@pytest.fixture
def platform(client: TestClient, ctx: Context) -> Platform:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    return platform


def _post_all(client: TestClient, token: str, batches: list[list[dict[str, Any]]]) -> list[Any]:
    answers: list[Any] = [None] * len(batches)

    def post(n: int) -> None:
        answers[n] = client.post(
            "/v1/usage-events", json={"events": batches[n]}, headers=bearer(token)
        )

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_concurrent_single_event_posts_share_commits_and_each_is_charged_once(
    client: TestClient, ctx: Context, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = platform.team().team_id
    platform.promo(team, "10.00")
    groups: list[int] = []
    together = usage.ingest_together

    def counted(ctx: Context, batches: Any) -> Any:
        groups.append(len(batches))
        return together(ctx, batches)

    monkeypatch.setattr(group_commit, "ingest_together", counted)
    now = ctx.clock.now()
    singles = [[event(team, f"e{n}", now, requests=1)] for n in range(200)]
    answers = _post_all(client, platform.service, singles)
    assert [a.status_code for a in answers] == [200] * 200
    assert all(a.json() == {"accepted": 1, "duplicates": 0, "rejected": []} for a in answers)
    assert sum(groups) == 200 and len(groups) < 200  # several POSTs per commit
    balance = client.get(f"/v1/teams/{team}/balance", headers=bearer(platform.operator)).json()
    assert balance["available"]["total"] == "8.00"  # 200 × $0.01, once each
    again = _post_all(client, platform.service, singles[:20])
    assert all(a.json()["duplicates"] == 1 for a in again)


def test_each_member_gets_its_own_part_of_the_group_result(
    ctx: Context, platform: Platform
) -> None:
    team = platform.team().team_id
    platform.promo(team, "1.00")
    gateway = authenticate(ctx, platform.service)
    now = ctx.clock.now()
    platform.usage(event(team, "seen", now, requests=1))
    outcomes = usage.ingest_together(
        ctx,
        [
            (gateway, [event(team, "a", now, requests=1), {"id": "bad"}]),
            (gateway, [event(team, "seen", now, requests=1)]),  # a duplicate
            (gateway, "not a list"),
            (gateway, [event(team, "b", now, requests=1), event(team, "c", now, requests=2)]),
        ],
    )
    first, second, third, fourth = outcomes
    assert isinstance(first, usage.IngestResult) and first.accepted == 1
    assert [(r.index, r.code) for r in first.rejected] == [(1, "invalid_event")]
    assert isinstance(second, usage.IngestResult)
    assert (second.accepted, second.duplicates) == (0, 1)
    assert isinstance(third, Exception) and getattr(third, "code", "") == "invalid_request"
    assert isinstance(fourth, usage.IngestResult) and fourth.accepted == 2
    assert fourth.charged_requests == {team: ["b", "c"]}


def test_a_failed_group_answers_every_member_with_the_truth_and_stores_none(
    client: TestClient, ctx: Context, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = platform.team().team_id
    platform.promo(team, "1.00")

    def down(*_: Any) -> None:
        raise ServiceUnavailable("The database is not answering; retry.")

    monkeypatch.setattr(usage, "_charge_batch", down)
    now = ctx.clock.now()
    answers = _post_all(
        client, platform.service, [[event(team, f"f{n}", now, requests=1)] for n in range(20)]
    )
    assert {a.status_code for a in answers} == {503}
    assert {a.json()["error"]["code"] for a in answers} == {"service_unavailable"}
    monkeypatch.undo()
    stored = client.get(f"/v1/teams/{team}/balance", headers=bearer(platform.operator)).json()
    assert stored["available"]["total"] == "1.00"


def test_the_recharge_check_runs_once_per_group_for_its_recharging_teams(
    client: TestClient, ctx: Context, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    teams = [platform.team().team_id for _ in range(5)]
    for team in teams:
        platform.promo(team, "1.00")
    recharging = set(teams[:2])
    with ctx.uow() as uow:
        for team in recharging:
            uow.recharges.save_settings(
                team, AutoRecharge(True, dollars("0.10"), dollars("20")), ctx.clock.now()
            )
        uow.commit()
    checked: list[set[str]] = []
    groups: list[set[str]] = []
    together = usage.ingest_together

    def counted(ctx: Context, batches: Any) -> Any:
        groups.append({e["team_id"] for _, events in batches for e in events})
        return together(ctx, batches)

    def check(_: Context, team_ids: Any) -> int:
        if team_ids:
            checked.append(set(team_ids))
        return 0

    monkeypatch.setattr(group_commit, "ingest_together", counted)
    monkeypatch.setattr(usage_routes, "recharge_after_usage", check)
    monkeypatch.setattr(fast_usage, "recharge_after_usage", check)
    now = ctx.clock.now()
    singles = [[event(teams[n % 5], f"r{n}", now, requests=1)] for n in range(60)]
    assert {a.status_code for a in _post_all(client, platform.service, singles)} == {200}
    # One check per commit that charged a team with auto-recharge on, for those teams;
    # none for a commit that charged only teams without it.
    assert sorted(map(sorted, checked)) == sorted(
        sorted(g & recharging) for g in groups if g & recharging
    )
    assert set().union(*checked) == recharging


def test_larger_batches_are_charged_one_at_a_time_in_a_process_and_each_once(
    client: TestClient, ctx: Context, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch too large to group waits its turn: two never share the interpreter and
    the team locks (docs/decisions/0036); each is charged once, in full."""
    team = platform.team().team_id
    platform.promo(team, "10.00")
    running, most = [0], [0]
    lock = threading.Lock()
    alone = usage.charge_read

    def counted(ctx: Context, read: Any) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return alone(ctx, read)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(group_commit, "charge_read", counted)
    now = ctx.clock.now()
    size = group_commit.SMALL_BATCH + 1
    batches = [[event(team, f"b{b}-{n}", now, requests=1) for n in range(size)] for b in range(6)]
    answers = _post_all(client, platform.service, batches)
    assert [a.json() for a in answers] == [{"accepted": size, "duplicates": 0, "rejected": []}] * 6
    assert most[0] == group_commit.BATCH_TURNS == 1
    balance = client.get(f"/v1/teams/{team}/balance", headers=bearer(platform.operator)).json()
    charged = 6 * size * dollars("0.01")  # one request at $0.01 each
    assert balance["available"]["total"] == format_amount(dollars("10.00") - charged)


def test_a_larger_batch_reads_its_events_while_another_has_the_turn(
    client: TestClient, ctx: Context, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch whose turn it is waits until the other has been read: were reading
    inside the turn, it would wait for nothing and this would time out."""
    team = platform.team().team_id
    platform.promo(team, "10.00")
    both_read = threading.Barrier(2, timeout=10)
    seen: list[bool] = []
    read, charge = usage.read_batch, usage.charge_read

    def reading(ctx: Context, principal: Any, events: Any) -> Any:
        out = read(ctx, principal, events)
        both_read.wait()  # each read waits for the other; neither holds the turn yet
        return out

    def charging(ctx: Context, read_events: Any) -> Any:
        seen.append(both_read.broken)
        return charge(ctx, read_events)

    monkeypatch.setattr(group_commit, "read_batch", reading)
    monkeypatch.setattr(group_commit, "charge_read", charging)
    now = ctx.clock.now()
    size = group_commit.SMALL_BATCH + 1
    batches = [[event(team, f"b{b}-{n}", now, requests=1) for n in range(size)] for b in range(2)]
    answers = _post_all(client, platform.service, batches)
    assert [a.json()["accepted"] for a in answers] == [size, size]
    assert seen == [False, False]


def test_a_caller_arriving_as_the_last_writer_ends_finds_a_writer(
    client: TestClient, ctx: Context, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answered caller sends its next event before the finished writer's task has run
    its done callbacks; with one writer allowed, the caller must still get one (it used
    to wait for a writer that was gone)."""
    team = platform.team().team_id
    platform.promo(team, "1.00")
    gateway = authenticate(ctx, platform.service)

    async def known(*_: Any) -> Any:
        return gateway  # from memory: nothing between the answer and the next call

    monkeypatch.setattr(group_commit, "principal_of", known)
    monkeypatch.setattr(group_commit, "WRITERS", 1)
    groups: group_commit.GroupCommit = client.app.state.usage_groups  # type: ignore[attr-defined]
    now = ctx.clock.now()

    async def one_after_another() -> list[group_commit.Written]:
        async with asyncio.timeout(10):
            return [
                await groups.ingest(None, None, [event(team, f"n{n}", now, requests=1)])
                for n in range(3)
            ]

    with ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever runs in this thread
        written = pool.submit(lambda: asyncio.run(one_after_another())).result()
    assert [w.result.accepted for w in written] == [1, 1, 1]
