"""PUT /v1/prices never leaves the platform unable to bill: an empty book is refused, and
so is one that leaves out prices still in use (usage in the last 35 days, or a team's
custom prices), unless the operator says `allow_removals=true`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.services.context import Context
from tests.conftest import START
from tests.helpers import Platform, bearer, error_code, event, price

LLAMA = price("llama", "requests", "0.01")
MISTRAL = price("mistral", "requests", "0.01")
H100 = price(None, "gpu_seconds", "0.001", product="dedicated", gpu="h100")


def _platform(client: TestClient, ctx: Context) -> Platform:
    platform = Platform.on(client, ctx)
    platform.put_prices(LLAMA, MISTRAL, H100)
    return platform


def _put(platform: Platform, rows: list[dict[str, Any]], **params: str) -> Any:
    return platform.client.put(
        "/v1/prices", json=rows, params=params, headers=bearer(platform.operator)
    )


def _book(platform: Platform) -> list[tuple[str, str | None, str | None, str]]:
    response = platform.client.get("/v1/prices", headers=bearer(platform.operator))
    assert response.status_code == 200, response.text
    return sorted((p["product"], p["model"], p["gpu"], p["meter"]) for p in response.json()["data"])


FULL_BOOK = [
    ("dedicated", None, "h100", "gpu_seconds"),
    ("serverless", "llama", None, "requests"),
    ("serverless", "mistral", None, "requests"),
]


def test_an_empty_price_book_is_refused_even_with_removals_allowed(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    team = platform.team()
    clock.advance(timedelta(seconds=1))

    answers = [_put(platform, []), _put(platform, [], allow_removals="true")]

    assert [(a.status_code, error_code(a)) for a in answers] == [(422, "empty_price_book")] * 2
    assert answers[0].json()["error"]["param"] == "prices"
    assert _book(platform) == FULL_BOOK
    assert platform.usage(event(team.team_id, "e1", START, requests=1))["accepted"] == 1


def test_a_book_leaving_out_prices_in_use_is_refused_and_says_which(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    team = platform.team()
    platform.usage(
        event(team.team_id, "e1", START, requests=1),
        event(
            team.team_id, "e2", START, product="dedicated", model="ft", gpu="h100", gpu_seconds=9
        ),
    )
    clock.advance(timedelta(days=1))

    answer = _put(platform, [MISTRAL])

    assert (answer.status_code, error_code(answer)) == (409, "prices_in_use")
    message = answer.json()["error"]["message"]
    assert "serverless/llama/requests" in message
    assert "dedicated/h100/gpu_seconds" in message
    assert "mistral" not in message
    assert _book(platform) == FULL_BOOK
    assert platform.usage(event(team.team_id, "e3", START, requests=1))["accepted"] == 1


def test_an_operator_may_drop_prices_in_use_on_purpose(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    team = platform.team()
    platform.usage(event(team.team_id, "e1", START, requests=1))
    clock.advance(timedelta(seconds=1))

    answer = _put(platform, [MISTRAL], allow_removals="true")

    assert answer.status_code == 200, answer.text
    assert _book(platform) == [("serverless", "mistral", None, "requests")]
    later = platform.usage(event(team.team_id, "e2", clock.now(), requests=1))
    assert [r["code"] for r in later["rejected"]] == ["unknown_model"]


def test_prices_without_recent_usage_may_be_left_out_or_changed(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    team = platform.team()
    platform.usage(event(team.team_id, "e1", START, requests=1))
    clock.advance(timedelta(seconds=1))

    answer = _put(platform, [price("llama", "requests", "0.02"), H100])

    assert answer.status_code == 200, answer.text
    assert _book(platform) == [FULL_BOOK[0], FULL_BOOK[1]]


def test_usage_older_than_the_usage_window_no_longer_holds_a_price(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    team = platform.team()
    platform.usage(event(team.team_id, "e1", START, requests=1))
    clock.advance(timedelta(days=35, seconds=1))

    answer = _put(platform, [MISTRAL, H100])

    assert answer.status_code == 200, answer.text


def test_a_price_that_a_team_has_custom_prices_for_is_in_use(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    team = platform.team()
    custom = client.put(
        f"/v1/teams/{team.team_id}/pricing",
        json={"prices": [price("mistral", "requests", "0.005")]},
        headers=bearer(platform.operator),
    )
    assert custom.status_code == 200, custom.text
    clock.advance(timedelta(seconds=1))

    answer = _put(platform, [LLAMA, H100])

    assert (answer.status_code, error_code(answer)) == (409, "prices_in_use")
    assert "serverless/mistral/requests" in answer.json()["error"]["message"]
