"""Usage drawn from credits (SPEC §4): the five buckets, scopes, several grants per
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
    expiring_limited = platform.promo(tid, "1.00", scope={"products": ["serverless"]}, expires_at=SOON)
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
