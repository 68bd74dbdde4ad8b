"""POST /v1/usage-events: each event taken or rejected on its own with a code,
duplicates charged once, conflicting payloads refused, limits on the batch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from creditledger.services.context import Context
from tests.conftest import START
from tests.helpers import (
    Platform,
    bearer,
    charged_events,
    error_code,
    event,
    nanos,
    price,
    usage_violations,
)

T = START - timedelta(minutes=1)


@pytest.fixture
def platform(client: TestClient, ctx: Context) -> Platform:
    platform = Platform.on(client, ctx)
    platform.put_prices(
        price("llama", "requests", "0.01"),
        price(None, "gpu_seconds", "2.50", 3_600, product="dedicated", gpu="h100"),
    )
    return platform


def _charged(ctx: Context) -> dict[str, int]:
    return {c.event_id: c.charge for c in charged_events(ctx.settings.database_url)}


def test_the_same_event_twice_in_one_batch_is_charged_once(
    platform: Platform, ctx: Context
) -> None:
    tid = platform.team().team_id
    once = event(tid, "e1", T, requests=3)

    answer = platform.usage(once, dict(once), event(tid, "e2", T, requests=1))

    assert answer == {"accepted": 2, "duplicates": 1, "rejected": []}
    assert _charged(ctx) == {"e1": nanos("0.03"), "e2": nanos("0.01")}
    assert platform.unpaid(tid) == nanos("0.04")


def test_an_event_sent_again_in_a_later_batch_is_a_duplicate_and_charged_once(
    platform: Platform, ctx: Context
) -> None:
    tid = platform.team().team_id
    first = platform.usage(event(tid, "e1", T, requests=3))
    # The same instant written in another zone is the same payload.
    again = event(tid, "e1", T, requests=3) | {"timestamp": "2026-11-24T12:59:00+01:00"}

    second = platform.usage(again, event(tid, "e2", T, requests=1))

    assert first == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert second == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert platform.unpaid(tid) == nanos("0.04")
    assert usage_violations(ctx.settings.database_url) == []


def test_the_same_id_with_another_payload_is_an_event_id_conflict(
    platform: Platform, ctx: Context
) -> None:
    tid = platform.team().team_id
    platform.usage(event(tid, "e1", T, requests=3))

    answer = platform.usage(
        event(tid, "e1", T, requests=4),
        event(tid, "e2", T, requests=1),
        event(tid, "e2", T + timedelta(seconds=1), requests=1),
    )

    assert answer["accepted"] == 1
    assert [(r["index"], r["id"], r["code"]) for r in answer["rejected"]] == [
        (0, "e1", "event_id_conflict"),
        (2, "e2", "event_id_conflict"),
    ]
    assert _charged(ctx) == {"e1": nanos("0.03"), "e2": nanos("0.01")}


def test_event_ids_are_unique_per_team_not_across_teams(platform: Platform, ctx: Context) -> None:
    one, two = platform.team().team_id, platform.team().team_id

    answer = platform.usage(
        event(one, "shared", T, requests=1), event(two, "shared", T, requests=2)
    )

    assert answer == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert (platform.unpaid(one), platform.unpaid(two)) == (nanos("0.01"), nanos("0.02"))


BAD_EVENTS: list[tuple[str, dict[str, Any], str]] = [
    ("negative quantity", {"quantities": {"requests": -1}}, "invalid_quantity"),
    ("float quantity", {"quantities": {"requests": 1.5}}, "invalid_quantity"),
    ("whole float quantity", {"quantities": {"requests": 2.0}}, "invalid_quantity"),
    ("boolean quantity", {"quantities": {"requests": True}}, "invalid_quantity"),
    ("string quantity", {"quantities": {"requests": "3"}}, "invalid_quantity"),
    ("null quantity", {"quantities": {"requests": None}}, "invalid_quantity"),
    ("huge quantity", {"quantities": {"requests": 10**16}}, "invalid_quantity"),
    ("empty quantities", {"quantities": {}}, "invalid_quantity"),
    ("quantities not an object", {"quantities": [1]}, "invalid_quantity"),
    ("no quantities", {"quantities": None}, "invalid_quantity"),
    ("unknown model", {"model": "gpt-9"}, "unknown_model"),
    ("unknown meter", {"quantities": {"requests": 1, "images": 1}}, "unknown_meter"),
    ("meter not a name", {"quantities": {"Requests!": 1}}, "unknown_meter"),
    ("36 days old", {"timestamp": "2026-10-19T11:59:00Z"}, "timestamp_out_of_range"),
    ("6 minutes ahead", {"timestamp": "2026-11-24T12:06:00Z"}, "timestamp_out_of_range"),
    ("year 1 east of utc", {"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp_out_of_range"),
    ("no zone", {"timestamp": "2026-11-24T11:00:00"}, "invalid_timestamp"),
    ("not a time", {"timestamp": "yesterday"}, "invalid_timestamp"),
    ("a number", {"timestamp": 1_790_000_000}, "invalid_timestamp"),
    ("no timestamp", {"timestamp": None}, "invalid_timestamp"),
    ("unknown team", {"team_id": "team_00000000000000000000000000000000"}, "unknown_team"),
    ("unknown field", {"cost": "0.00"}, "unknown_field"),
    ("unknown product", {"product": "training"}, "unknown_product"),
    ("no id", {"id": None}, "invalid_event"),
    ("empty id", {"id": ""}, "invalid_event"),
    ("id too long", {"id": "x" * 256}, "invalid_event"),
    ("no team", {"team_id": None}, "invalid_event"),
    ("no model", {"model": None}, "invalid_event"),
    ("model not a name", {"model": "llama 3"}, "invalid_event"),
]


def test_each_bad_event_is_rejected_with_its_code_and_the_rest_of_the_batch_is_taken(
    platform: Platform, ctx: Context
) -> None:
    tid = platform.team().team_id
    batch: list[dict[str, Any]] = []
    expected: list[tuple[int, str, str]] = []
    for n, (why, change, code) in enumerate(BAD_EVENTS):
        batch.append(event(tid, f"ok-{n}", T, requests=1))
        expected.append((len(batch), why, code))
        batch.append(event(tid, f"bad-{n}", T, requests=1) | change)

    answer = platform.usage(*batch)

    codes = {r["index"]: r["code"] for r in answer["rejected"]}
    assert [(index, why, codes.get(index)) for index, why, _ in expected] == expected
    assert len(answer["rejected"]) == len(BAD_EVENTS)
    assert all(r["message"] for r in answer["rejected"])
    assert answer["accepted"] == len(BAD_EVENTS)
    assert _charged(ctx) == {f"ok-{n}": nanos("0.01") for n in range(len(BAD_EVENTS))}


def test_an_event_that_is_not_an_object_is_an_invalid_event(platform: Platform) -> None:
    tid = platform.team().team_id

    answer = platform.usage("e1", event(tid, "ok", T, requests=1), [1], None)  # type: ignore[arg-type]

    assert answer["accepted"] == 1
    assert [(r["index"], r["id"], r["code"]) for r in answer["rejected"]] == [
        (0, None, "invalid_event"),
        (2, None, "invalid_event"),
        (3, None, "invalid_event"),
    ]


def test_timestamps_up_to_35_days_old_and_5_minutes_ahead_are_taken(
    platform: Platform, ctx: Context
) -> None:
    tid = platform.team().team_id

    answer = platform.usage(
        event(tid, "oldest", START - timedelta(days=35), requests=1),
        event(tid, "newest", START + timedelta(minutes=5), requests=1),
    )

    assert answer == {"accepted": 2, "duplicates": 0, "rejected": []}


def test_a_rejected_event_is_not_remembered_so_its_corrected_form_is_taken(
    platform: Platform, ctx: Context
) -> None:
    tid = platform.team().team_id

    first = platform.usage(
        event(tid, "m1", T, model="llama-typo", requests=2),
        event(tid, "m2", T, requests=-2),
    )
    second = platform.usage(event(tid, "m1", T, requests=2), event(tid, "m2", T, requests=2))

    assert first["accepted"] == 0
    assert [r["code"] for r in first["rejected"]] == ["unknown_model", "invalid_quantity"]
    assert second == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert _charged(ctx) == {"m1": nanos("0.02"), "m2": nanos("0.02")}


def test_an_event_whose_charge_does_not_fit_the_ledger_is_rejected_not_a_server_error(
    platform: Platform, ctx: Context
) -> None:
    platform.put_prices(price("llama", "requests", "1000000.00"))
    tid = platform.team().team_id

    answer = platform.usage(
        event(tid, "huge", T, requests=10**15), event(tid, "fine", T, requests=1)
    )

    assert answer["accepted"] == 1
    assert [(r["id"], r["code"]) for r in answer["rejected"]] == [("huge", "invalid_quantity")]
    assert _charged(ctx) == {"fine": nanos("1000000.00")}


def _post(client: TestClient, token: str, body: object) -> Any:
    return client.post("/v1/usage-events", json=body, headers=bearer(token))


def test_a_batch_of_more_than_5000_events_is_refused_whole(
    platform: Platform, client: TestClient, ctx: Context
) -> None:
    tid = platform.team().team_id
    events = [event(tid, f"e{i}", T, requests=1) for i in range(5_001)]

    response = _post(client, platform.service, {"events": events})

    assert response.status_code == 422
    assert error_code(response) == "invalid_request"
    assert _charged(ctx) == {}


def test_a_body_over_5_mb_is_refused_with_413(platform: Platform, client: TestClient) -> None:
    padding = "x" * (5 * 1024 * 1024)
    body = orjson.dumps({"events": [], "padding": padding})

    response = client.post(
        "/v1/usage-events",
        content=body,
        headers=bearer(platform.service) | {"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


def test_a_streamed_body_over_5_mb_is_refused_with_413_too(
    platform: Platform, client: TestClient
) -> None:
    def chunks() -> Any:
        yield b'{"events": ["'
        for _ in range(6):
            yield b"x" * (1024 * 1024)
        yield b'"]}'

    response = client.post(
        "/v1/usage-events",
        content=chunks(),
        headers=bearer(platform.service) | {"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


NOT_A_BATCH: list[tuple[object, str]] = [
    ({"events": {"id": "e1"}}, "invalid_request"),
    ({"events": "e1"}, "invalid_request"),
    ({"events": None}, "invalid_request"),
    ({}, "invalid_request"),
    ([], "invalid_request"),
    ({"events": [], "team_id": "x"}, "unknown_field"),
]


def test_a_body_that_is_not_an_events_list_is_refused_with_422(
    platform: Platform, client: TestClient
) -> None:
    answers = [_post(client, platform.service, body) for body, _ in NOT_A_BATCH]

    assert [(a.status_code, error_code(a)) for a in answers] == [
        (422, code) for _, code in NOT_A_BATCH
    ]


def test_a_body_that_is_not_json_is_refused_as_invalid_json(
    platform: Platform, client: TestClient
) -> None:
    response = client.post(
        "/v1/usage-events",
        content=b"{not json",
        headers=bearer(platform.service) | {"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert error_code(response) == "invalid_json"


def test_an_empty_batch_is_accepted_as_nothing(platform: Platform) -> None:
    assert platform.usage() == {"accepted": 0, "duplicates": 0, "rejected": []}
