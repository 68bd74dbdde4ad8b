"""Prices: exact fractions, each event rounded once to the nano-dollar (half to
even), the most specific price, price book versions, and a team's custom prices and
discount from their effective date. Charges are read back from the stored events."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
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

T = START + timedelta(minutes=1)


def _charges(ctx: Context) -> dict[str, int]:
    return {c.event_id: c.charge for c in charged_events(ctx.settings.database_url)}


def test_37_tokens_at_20_cents_a_million_cost_exactly_7400_nanos_every_time(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "input_tokens", "0.20", 1_000_000))
    tid = platform.team().team_id
    clock.advance(timedelta(minutes=5))

    for batch in range(4):
        platform.usage(*(event(tid, f"e{batch}-{i}", T, input_tokens=37) for i in range(50)))

    charges = _charges(ctx)
    assert set(charges.values()) == {nanos("0.0000074")}
    assert sum(charges.values()) == 200 * 7_400 == platform.unpaid(tid)
    report = client.get(
        f"/v1/teams/{tid}/usage", params={"granularity": "day"}, headers=bearer(platform.operator)
    ).json()["data"]
    assert [(r["cost"], r["unpaid"]) for r in report] == [("0.00148", "0.00148")]


def test_gpu_seconds_at_2_50_an_hour_are_rounded_once_per_event(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price(None, "gpu_seconds", "2.50", 3_600, product="dedicated", gpu="h100"))
    tid = platform.team().team_id
    clock.advance(timedelta(minutes=5))
    seconds = {"s1": 1, "s4": 4, "s3600": 3_600, "s7": 7}

    platform.usage(
        *(
            event(tid, eid, T, product="dedicated", model="ft", gpu="h100", gpu_seconds=q)
            for eid, q in seconds.items()
        )
    )

    # $2.50 / 3,600 s = 6,250,000 / 9 nanos a second.
    assert _charges(ctx) == {
        "s1": 694_444,  # 694,444.4…
        "s4": 2_777_778,  # 2,777,777.7…
        "s3600": nanos("2.50"),
        "s7": 4_861_111,  # 4,861,111.1…
    }


def test_a_charge_exactly_half_way_rounds_to_the_even_nano(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("flux", "images", "0.000000001", 2))  # half a nano an image
    tid = platform.team().team_id
    clock.advance(timedelta(minutes=5))

    platform.usage(*(event(tid, f"i{q}", T, model="flux", images=q) for q in (1, 3, 5, 7)))

    assert _charges(ctx) == {"i1": 0, "i3": 2, "i5": 2, "i7": 4}
    assert usage_violations(ctx.settings.database_url) == []


def test_the_meters_of_one_event_are_added_exactly_and_rounded_once(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(
        price("llama", "input_tokens", "0.000000001", 2),
        price("llama", "output_tokens", "0.000000001", 2),
        price("llama", "requests", "0.000000001", 3),
    )
    tid = platform.team().team_id
    clock.advance(timedelta(minutes=5))

    platform.usage(
        # ½ + ½ = 1 nano, where rounding each meter to even would give 0.
        event(tid, "halves", T, input_tokens=1, output_tokens=1),
        # ½ + ½ + ⅓ = 1.33 → 1 nano; per meter it would be 0 + 0 + 0.
        event(tid, "thirds", T, input_tokens=1, output_tokens=1, requests=1),
        # 1.5 + 1.5 + ⅔ = 3.67 → 4; per meter it would be 2 + 2 + 1 = 5.
        event(tid, "mixed", T, input_tokens=3, output_tokens=3, requests=2),
    )

    assert _charges(ctx) == {"halves": 1, "thirds": 1, "mixed": 4}


def test_the_most_specific_price_wins_model_and_gpu_then_model_then_gpu(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(
        price("llama", "requests", "0.01", product="dedicated"),
        price("llama", "requests", "0.02", product="dedicated", gpu="h100"),
        price(None, "requests", "0.03", product="dedicated", gpu="h100"),
    )
    tid = platform.team().team_id
    clock.advance(timedelta(minutes=5))

    platform.usage(
        event(tid, "model-and-gpu", T, product="dedicated", model="llama", gpu="h100", requests=1),
        event(tid, "model", T, product="dedicated", model="llama", gpu="a100", requests=1),
        event(tid, "gpu", T, product="dedicated", model="ft", gpu="h100", requests=1),
    )

    assert _charges(ctx) == {
        "model-and-gpu": nanos("0.02"),
        "model": nanos("0.01"),
        "gpu": nanos("0.03"),
    }


def test_a_new_price_book_prices_usage_from_then_on_and_earlier_usage_keeps_old_prices(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    tid = platform.team().team_id
    clock.advance(timedelta(hours=1))
    platform.put_prices(price("llama", "requests", "0.02"))
    clock.advance(timedelta(minutes=1))

    platform.usage(
        event(tid, "before-first-book", START - timedelta(hours=1), requests=1),
        event(tid, "old", START + timedelta(minutes=59), requests=1),
        event(tid, "new", START + timedelta(hours=1), requests=1),
    )

    assert _charges(ctx) == {
        "before-first-book": nanos("0.01"),
        "old": nanos("0.01"),
        "new": nanos("0.02"),
    }


def test_a_team_discount_applies_from_its_effective_date_and_only_to_that_team(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "input_tokens", "0.20", 1_000_000))
    discounted = platform.team().team_id
    other = platform.team().team_id
    from_ = START + timedelta(minutes=30)
    response = client.put(
        f"/v1/teams/{discounted}/pricing",
        json={"discount_percent": "12.5", "effective_from": from_.isoformat()},
        headers=bearer(platform.operator),
    )
    assert response.status_code == 200, response.text
    assert response.json()["discount_percent"] == "12.50"
    clock.advance(timedelta(hours=1))

    platform.usage(
        event(discounted, "list", from_ - timedelta(microseconds=1), input_tokens=37),
        event(discounted, "cheaper", from_, input_tokens=37),
        event(discounted, "odd", from_, input_tokens=1),
        event(other, "full", from_, input_tokens=37),
    )

    assert _charges(ctx) == {
        "list": 7_400,
        "cheaper": 6_475,  # 7,400 × 0.875
        "odd": 175,  # 200 × 0.875
        "full": 7_400,
    }


def test_team_custom_prices_replace_list_prices_from_their_date_and_fall_back_per_meter(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(
        price("llama", "input_tokens", "0.20", 1_000_000),
        price("llama", "output_tokens", "0.60", 1_000_000),
    )
    tid = platform.team().team_id
    from_ = START + timedelta(minutes=30)
    response = client.put(
        f"/v1/teams/{tid}/pricing",
        json={
            "prices": [price("llama", "input_tokens", "0.10", 1_000_000)],
            "discount_percent": "10",
            "effective_from": from_.isoformat(),
        },
        headers=bearer(platform.operator),
    )
    assert response.status_code == 200, response.text
    clock.advance(timedelta(hours=1))

    platform.usage(
        event(tid, "before", from_ - timedelta(minutes=1), input_tokens=1_000, output_tokens=1_000),
        event(tid, "after", from_, input_tokens=1_000, output_tokens=1_000),
    )

    assert _charges(ctx) == {
        "before": 200_000 + 600_000,
        "after": (100_000 + 600_000) * 9 // 10,
    }


BAD_BOOKS: list[tuple[str, list[dict[str, object]], str]] = [
    (
        "price as a number",
        [price("llama", "requests", "0.01") | {"unit_price": 0.01}],
        "invalid_amount",
    ),
    ("negative price", [price("llama", "requests", "-0.01")], "invalid_amount"),
    ("ten decimals", [price("llama", "requests", "0.0000000001")], "invalid_amount"),
    ("per_units zero", [price("llama", "requests", "0.01", 0)], "invalid_request"),
    (
        "per_units a string",
        [price("llama", "requests", "0.01") | {"per_units": "1"}],
        "invalid_request",
    ),
    ("no model or gpu", [price(None, "requests", "0.01")], "invalid_request"),
    ("meter not a name", [price("llama", "Requests", "0.01")], "invalid_request"),
    (
        "unknown product",
        [price("llama", "requests", "0.01", product="training")],
        "invalid_request",
    ),
    ("repeated price", [price("llama", "requests", "0.01")] * 2, "invalid_request"),
    ("unknown field", [price("llama", "requests", "0.01") | {"currency": "EUR"}], "unknown_field"),
]


def test_a_bad_price_book_is_refused_whole_and_the_old_one_stays(
    client: TestClient, ctx: Context
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))

    answers = [
        client.put("/v1/prices", json=book, headers=bearer(platform.operator))
        for _, book, _ in BAD_BOOKS
    ]

    assert [
        (why, a.status_code, error_code(a))
        for (why, _, _), a in zip(BAD_BOOKS, answers, strict=True)
    ] == [(why, 422, code) for why, _, code in BAD_BOOKS]
    current = client.get("/v1/prices", headers=bearer(platform.operator)).json()
    assert current["data"] == [price("llama", "requests", "0.01")]


def test_bad_team_pricing_is_refused_and_changes_nothing(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    tid = platform.team().team_id
    bodies: list[tuple[dict[str, object], int]] = [
        ({}, 422),
        ({"discount_percent": "101"}, 422),
        ({"discount_percent": "12.345"}, 422),
        ({"discount_percent": 12.5}, 422),
        ({"discount_percent": "-5"}, 422),
        ({"discount_percent": "10", "effective_from": "2026-11-24T12:00:00"}, 422),
        ({"discount_percent": "10", "tier": 5}, 422),
    ]

    answers = [
        client.put(f"/v1/teams/{tid}/pricing", json=body, headers=bearer(platform.operator))
        for body, _ in bodies
    ]
    missing = client.put(
        "/v1/teams/team_00000000000000000000000000000000/pricing",
        json={"discount_percent": "10"},
        headers=bearer(platform.operator),
    )
    platform.usage(event(tid, "e", T, requests=1))

    assert [a.status_code for a in answers] == [status for _, status in bodies]
    assert missing.status_code == 404
    assert _charges(ctx) == {"e": nanos("0.01")}
