"""Usage drawn from credits: the five buckets, scopes, several grants per
event, and what no grant covers going to the unpaid balance. Everything goes through
the HTTP API: prices by an operator, usage by the gateway's service token."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.services.context import Context
from tests.conftest import START
from tests.helpers import Platform, at, event, nanos, price, usage_violations

# One cent per request makes charges easy to read.
CENT_PRICES = (
    price("llama", "requests", "0.01"),
    price("mistral", "requests", "0.01"),
    price("llama", "requests", "0.01", product="dedicated"),
    price(None, "requests", "0.01", product="dedicated", gpu="h100"),
    price(None, "requests", "0.01", product="dedicated", gpu="a100"),
)
LATER = START + timedelta(hours=1)
SOON = at("2026-12-01")
LATER_EXPIRY = at("2026-12-10")


def _platform(client: TestClient, ctx: Context, clock: FixedClock) -> Platform:
    platform = Platform.on(client, ctx)
    platform.put_prices(*CENT_PRICES)
    return platform


def _history(client: TestClient, team_id: str, token: str) -> list[dict[str, object]]:
    response = client.get(
        f"/v1/teams/{team_id}/credit-history",
        params={"type": "usage", "limit": 500},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, object]] = response.json()["data"]
    return data


def test_usage_is_drawn_through_the_five_buckets_in_order_then_goes_unpaid(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx, clock)
    team = platform.team()
    tid = team.team_id
    # Created in the reverse of the order they are drawn in.
    prepaid = platform.prepaid(tid, "1.00")
    forever_unlimited = platform.promo(tid, "1.00")
    forever_limited = platform.promo(tid, "1.00", scope={"models": ["llama"]})
    expiring_unlimited = platform.promo(tid, "1.00", expires_at=SOON)
    expiring_limited = platform.promo(
        tid, "1.00", scope={"products": ["serverless"]}, expires_at=SOON
    )
    clock.advance(timedelta(hours=1))

    answer = platform.usage(event(tid, "e1", START + timedelta(minutes=30), requests=450))

    assert answer == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert platform.remaining(tid) == {
        expiring_limited: 0,
        expiring_unlimited: 0,
        forever_limited: 0,
        forever_unlimited: 0,
        prepaid: nanos("0.50"),
    }
    drawn = [(h["grant_id"], h["amount"]) for h in _history(client, tid, team.token)]
    assert sorted(drawn, key=str) == sorted(
        [
            (expiring_limited, "-1.00"),
            (expiring_unlimited, "-1.00"),
            (forever_limited, "-1.00"),
            (forever_unlimited, "-1.00"),
            (prepaid, "-0.50"),
        ],
        key=str,
    )
    assert platform.unpaid(tid) == 0

    platform.usage(event(tid, "e2", START + timedelta(minutes=40), requests=80))

    assert platform.remaining(tid)[prepaid] == 0
    assert platform.unpaid(tid) == nanos("0.30")
    assert usage_violations(ctx.settings.database_url) == []


def test_a_scoped_grant_pays_only_for_usage_inside_every_dimension_it_lists(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx, clock)
    tid = platform.team().team_id
    on_h100 = platform.promo(tid, "1.00", scope={"gpus": ["h100"]})
    dedicated_llama = platform.promo(
        tid, "1.00", scope={"products": ["dedicated"], "models": ["llama"]}
    )
    mistral = platform.promo(tid, "1.00", scope={"models": ["mistral"]})
    clock.advance(timedelta(hours=1))
    t = START + timedelta(minutes=10)

    platform.usage(
        event(tid, "h100", t, product="dedicated", model="ft-1", gpu="h100", requests=3),
        event(tid, "a100", t, product="dedicated", model="ft-1", gpu="a100", requests=5),
        event(tid, "ded-llama", t, product="dedicated", model="llama", gpu="a100", requests=7),
        event(tid, "srv-mistral", t, model="mistral", requests=11),
        event(tid, "srv-llama", t, model="llama", requests=13),
    )

    assert platform.remaining(tid) == {
        on_h100: nanos("0.97"),
        dedicated_llama: nanos("0.93"),
        mistral: nanos("0.89"),
    }
    # a100 usage of another model, and serverless llama, fit no scope.
    assert platform.unpaid(tid) == nanos("0.18")
    assert usage_violations(ctx.settings.database_url) == []


def test_one_event_spanning_several_grants_posts_once_per_grant_and_once_unpaid(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx, clock)
    team = platform.team()
    tid = team.team_id
    first = platform.promo(tid, "0.10", expires_at=SOON)
    second = platform.promo(tid, "0.20", expires_at=LATER_EXPIRY)
    third = platform.prepaid(tid, "0.30")
    clock.advance(timedelta(hours=1))

    platform.usage(event(tid, "big", START + timedelta(minutes=5), requests=75))

    entries = [h for h in _history(client, tid, team.token) if h["reference"] == "big"]
    assert sorted((str(h["grant_id"]), h["amount"]) for h in entries) == sorted(
        [(first, "-0.10"), (second, "-0.20"), (third, "-0.30"), ("None", "-0.15")]
    )
    assert platform.remaining(tid) == {first: 0, second: 0, third: 0}
    assert platform.unpaid(tid) == nanos("0.15")


def test_a_prepaid_only_team_still_accrues_what_credits_do_not_cover(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx, clock)
    with_a_little = platform.team().team_id
    with_nothing = platform.team().team_id
    grant = platform.prepaid(with_a_little, "0.05")
    clock.advance(timedelta(minutes=1))
    t = START + timedelta(seconds=30)

    answer = platform.usage(
        event(with_a_little, "a", t, requests=8), event(with_nothing, "b", t, requests=4)
    )

    assert answer["accepted"] == 2
    assert platform.remaining(with_a_little) == {grant: 0}
    assert platform.unpaid(with_a_little) == nanos("0.03")
    assert platform.unpaid(with_nothing) == nanos("0.04")
    balance = client.get(
        f"/v1/teams/{with_nothing}/balance",
        headers={"Authorization": f"Bearer {platform.operator}"},
    ).json()
    assert balance["unpaid_balance"] == "0.04"
    assert balance["available"]["total"] == "0.00"


def test_within_a_bucket_the_grant_expiring_first_is_drawn_first(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx, clock)
    tid = platform.team().team_id
    late = platform.promo(tid, "1.00", expires_at=LATER_EXPIRY)
    soon = platform.promo(tid, "1.00", expires_at=SOON)
    clock.advance(timedelta(hours=1))

    platform.usage(event(tid, "e", START + timedelta(minutes=1), requests=150))

    assert platform.remaining(tid) == {soon: 0, late: nanos("0.50")}


def test_credit_is_only_drawn_by_usage_inside_its_validity_window(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx, clock)
    tid = platform.team().team_id
    noon_to_one = platform.promo(
        tid, "1.00", effective_at=START, expires_at=START + timedelta(hours=1)
    )
    from_ten_past_one = platform.promo(tid, "1.00", effective_at=START + timedelta(minutes=70))
    clock.advance(timedelta(minutes=90))  # inside the late-arrival window of the first

    platform.usage(
        event(tid, "before", START - timedelta(minutes=1), requests=1),
        event(tid, "inside", START + timedelta(minutes=59), requests=2),
        event(tid, "gap", START + timedelta(hours=1), requests=4),
        event(tid, "after", START + timedelta(minutes=70), requests=8),
    )

    assert platform.remaining(tid) == {
        noon_to_one: nanos("0.98"),
        from_ten_past_one: nanos("0.92"),
    }
    assert platform.unpaid(tid) == nanos("0.05")


def test_a_voided_grant_pays_for_nothing_more(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx, clock)
    tid = platform.team().team_id
    voided = platform.promo(tid, "1.00")
    kept = platform.promo(tid, "1.00", expires_at=LATER_EXPIRY)
    clock.advance(timedelta(minutes=30))
    platform.usage(event(tid, "first", START + timedelta(minutes=1), requests=150))
    response = client.post(
        f"/v1/teams/{tid}/grants/{voided}/void",
        headers={"Authorization": f"Bearer {platform.operator}"},
    )
    assert response.status_code == 200, response.text

    platform.usage(event(tid, "second", START + timedelta(minutes=2), requests=10))

    assert platform.remaining(tid) == {kept: 0, voided: 0}
    assert platform.unpaid(tid) == nanos("0.10")
    assert usage_violations(ctx.settings.database_url) == []
