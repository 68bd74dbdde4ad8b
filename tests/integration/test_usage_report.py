"""GET /v1/teams/{id}/usage: cost per hour or day, by product or model, split into what
credits covered and what is unpaid (cost = covered_by_credits + unpaid)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.services.context import Context
from tests.conftest import START
from tests.helpers import Platform, at, bearer, error_code, event, price


@pytest.fixture
def platform(client: TestClient, ctx: Context) -> Platform:
    platform = Platform.on(client, ctx)
    platform.put_prices(
        price("llama", "requests", "0.01"),
        price("mistral", "requests", "0.01"),
        price("llama", "requests", "0.10", product="dedicated"),
    )
    return platform


def _report(
    client: TestClient, platform: Platform, tid: str, **params: str
) -> list[dict[str, Any]]:
    response = client.get(
        f"/v1/teams/{tid}/usage", params=params, headers=bearer(platform.operator)
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def _rows(data: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (r["start"], r["product"], r["model"], r["cost"], r["covered_by_credits"], r["unpaid"])
        for r in data
    ]


def test_hourly_usage_by_model_splits_cost_into_covered_and_unpaid(
    platform: Platform, client: TestClient, clock: FixedClock
) -> None:
    tid = platform.team().team_id
    platform.prepaid(tid, "0.05")
    clock.advance(timedelta(hours=2))
    platform.usage(
        event(tid, "a", START + timedelta(minutes=10), requests=3),
        event(tid, "b", START + timedelta(minutes=50), model="mistral", requests=1),
        event(tid, "c", START + timedelta(minutes=55), requests=4),
        event(tid, "d", START + timedelta(hours=1, minutes=20), requests=2),
    )

    data = _report(client, platform, tid, granularity="hour", group_by="model")

    assert _rows(data) == [
        ("2026-11-24T12:00:00Z", "serverless", "llama", "0.07", "0.04", "0.03"),
        ("2026-11-24T12:00:00Z", "serverless", "mistral", "0.01", "0.01", "0.00"),
        ("2026-11-24T13:00:00Z", "serverless", "llama", "0.02", "0.00", "0.02"),
    ]


def test_daily_usage_by_product_adds_up_the_models(
    platform: Platform, client: TestClient, clock: FixedClock
) -> None:
    tid = platform.team().team_id
    platform.usage(
        event(tid, "yesterday", START - timedelta(days=1), requests=1),
        event(tid, "llama", START, requests=2),
        event(tid, "mistral", START, model="mistral", requests=3),
        event(tid, "dedicated", START, product="dedicated", requests=1),
    )

    data = _report(client, platform, tid, granularity="day", group_by="product")

    assert _rows(data) == [
        ("2026-11-23T00:00:00Z", "serverless", None, "0.01", "0.00", "0.01"),
        ("2026-11-24T00:00:00Z", "dedicated", None, "0.10", "0.00", "0.10"),
        ("2026-11-24T00:00:00Z", "serverless", None, "0.05", "0.00", "0.05"),
    ]


def test_since_and_until_bound_the_report(
    platform: Platform, client: TestClient, clock: FixedClock
) -> None:
    tid = platform.team().team_id
    clock.advance(timedelta(hours=3))
    platform.usage(*(event(tid, f"h{h}", START + timedelta(hours=h), requests=1) for h in range(3)))

    data = _report(
        client,
        platform,
        tid,
        granularity="hour",
        since="2026-11-24T13:00:00Z",
        until="2026-11-24T14:00:00Z",
    )

    assert [r["start"] for r in data] == ["2026-11-24T13:00:00Z"]


def test_a_team_without_usage_has_an_empty_report(platform: Platform, client: TestClient) -> None:
    assert _report(client, platform, platform.team().team_id) == []


BAD_QUERIES = [
    {"since": "2026-11-24T12:00:00Z", "until": "2026-11-24T12:00:00Z"},
    {"granularity": "hour", "since": "2026-10-01T00:00:00Z", "until": "2026-11-24T00:00:00Z"},
    {"granularity": "week"},
    {"group_by": "gpu"},
    {"since": "2026-11-24T12:00:00"},
]


def test_a_bad_report_query_is_422(platform: Platform, client: TestClient) -> None:
    tid = platform.team().team_id

    answers = [
        client.get(f"/v1/teams/{tid}/usage", params=params, headers=bearer(platform.operator))
        for params in BAD_QUERIES
    ]

    assert [(a.status_code, error_code(a)) for a in answers] == [(422, "invalid_request")] * len(
        BAD_QUERIES
    )


def test_usage_in_the_current_hour_is_in_the_default_report(
    platform: Platform, client: TestClient, clock: FixedClock
) -> None:
    tid = platform.team().team_id
    clock.at = at("2026-11-24T12:59")
    platform.usage(event(tid, "now", clock.at, requests=1))

    hourly = _report(client, platform, tid, granularity="hour")
    daily = _report(client, platform, tid)

    assert [r["start"] for r in hourly] == ["2026-11-24T12:00:00Z"]
    assert [r["start"] for r in daily] == ["2026-11-24T00:00:00Z"]
