"""POST /v1/usage-events in front of the framework: small plain batches are charged by
``UsageFastPath``, everything else by the documented route, and both answer the same
request the same way, refusals included."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from creditledger.entrypoints.api import fast_usage, schemas
from creditledger.services.context import Context
from tests.helpers import Platform, bearer, event, price


@pytest.fixture
def platform(client: TestClient, ctx: Context) -> Platform:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    return platform


@pytest.fixture
def answered_fast(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many answers the fast path rendered."""
    seen: list[int] = []
    render = schemas.usage_batch_result

    def spy(result: Any) -> Any:
        seen.append(1)
        return render(result)

    monkeypatch.setattr(fast_usage, "usage_batch_result", spy)
    return seen


def _cases(platform: Platform, ctx: Context) -> list[tuple[str, bytes, dict[str, str]]]:
    """(name, body, headers): the same requests, for a new team each time."""
    team = platform.team().team_id
    platform.promo(team, "1.00")
    now = ctx.clock.now()
    good = event(team, "a", now, requests=2)

    def body(events: Any) -> bytes:
        return orjson.dumps({"events": events})

    service = bearer(platform.service)
    return [
        ("one event", body([good]), service),
        ("the same again", body([good]), service),
        ("a conflict", body([event(team, "a", now, requests=3)]), service),
        (
            "rejections",
            body(
                [
                    {"team_id": team},
                    event("team_nobody", "b", now, requests=1),
                    event(team, "c", now, model="nope", requests=1),
                    event(team, "d", now, requests=1),
                    "not an event",
                ]
            ),
            service,
        ),
        ("no events", body([]), service),
        ("not a list", orjson.dumps({"events": {"a": 1}}), service),
        ("another field", orjson.dumps({"events": [], "extra": 1}), service),
        ("a key twice", b'{"events": [], "events": []}', service),
        ("not JSON", b'{"events": [', service),
        ("an operator token", body([good]), bearer(platform.operator)),
        ("no token", body([good]), {}),
        ("a bad token", body([good]), bearer("cls_nope")),
    ]


def _answers(client: TestClient, cases: list[tuple[str, bytes, dict[str, str]]]) -> list[Any]:
    return [
        (
            name,
            (
                r := client.post(
                    "/v1/usage-events",
                    content=content,
                    headers={"Content-Type": "application/json", **headers},
                )
            ).status_code,
            r.json(),
        )
        for name, content, headers in cases
    ]


def test_the_fast_path_answers_as_the_route_does(
    client: TestClient,
    ctx: Context,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    answered_fast: list[int],
) -> None:
    fast = _answers(client, _cases(platform, ctx))
    assert len(answered_fast) == 5  # the plain ones that were charged
    monkeypatch.setattr(fast_usage.UsageFastPath, "max_bytes", 0)  # everything to the route
    routed = _answers(client, _cases(platform, ctx))
    assert len(answered_fast) == 5
    assert fast == routed
    assert [status for _, status, _ in fast] == [200] * 5 + [422, 422, 422, 400, 403, 401, 401]


def test_the_charge_is_the_same_either_way(
    client: TestClient, ctx: Context, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    balances = []
    for name in ("fast", "route"):
        if name == "route":
            monkeypatch.setattr(fast_usage.UsageFastPath, "max_bytes", 0)
        team = platform.team().team_id
        platform.promo(team, "1.00")
        for n in range(3):
            answer = client.post(
                "/v1/usage-events",
                json={"events": [event(team, f"e{n}", ctx.clock.now(), requests=n + 1)]},
                headers=bearer(platform.service),
            )
            assert answer.status_code == 200
        balance = client.get(f"/v1/teams/{team}/balance", headers=bearer(platform.operator))
        balances.append(balance.json()["available"])
    assert balances[0] == balances[1]
    assert balances[0]["total"] == "0.94"
