"""POST /v1/authorize: may the team make another request, at which tier, with
how much credit available for that product, model and GPU."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables
from creditledger.bootstrap import build_context
from creditledger.domain.accounts import BillingMode
from creditledger.entrypoints.api.app import create_app
from creditledger.services.context import Context
from tests.conftest import START, make_settings
from tests.helpers import (
    Platform,
    bearer,
    error_code,
    event,
    nanos,
    price,
    service_token,
    set_billing,
)

REDIS_URL = os.environ.get("CREDITLEDGER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("CREDITLEDGER_REQUIRE_POSTGRES") == "1"


def _authorize(
    client: TestClient, token: str, team_id: str, model: str = "llama", **extra: Any
) -> dict[str, Any]:
    body = {"team_id": team_id, "product": "serverless", "model": model} | extra
    response = client.post("/v1/authorize", json=body, headers=bearer(token))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
def platform(client: TestClient, ctx: Context) -> Platform:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"), price("mistral", "requests", "0.01"))
    return platform


def test_a_team_with_credit_for_the_model_is_allowed_with_its_tier(
    platform: Platform, client: TestClient
) -> None:
    tid = platform.team().team_id
    platform.promo(tid, "1.00", scope={"models": ["llama"]})
    platform.prepaid(tid, "0.50")

    answer = _authorize(client, platform.service, tid)

    assert answer == {
        "allowed": True,
        "reason": "ok",
        "tier": {"level": 0, "requests_per_minute": 20, "max_output_tokens": 8_192},
        "available": "1.50",
    }


def test_a_prepaid_only_team_without_credit_usable_for_the_model_is_refused(
    platform: Platform, client: TestClient
) -> None:
    tid = platform.team().team_id
    platform.promo(tid, "1.00", scope={"models": ["llama"]})
    empty = platform.team().team_id

    other_model = _authorize(client, platform.service, tid, model="mistral")
    nothing = _authorize(client, platform.service, empty)

    for answer in (other_model, nothing):
        assert (answer["allowed"], answer["reason"], answer["available"]) == (
            False,
            "insufficient_credits",
            "0.00",
        )
        assert "retry_after_seconds" not in answer
    assert _authorize(client, platform.service, tid)["allowed"] is True


def test_credit_that_is_not_yet_effective_or_has_expired_is_not_available(
    platform: Platform, client: TestClient, clock: FixedClock
) -> None:
    tid = platform.team().team_id
    platform.promo(tid, "1.00", effective_at=START + timedelta(hours=1))
    platform.promo(tid, "2.00", expires_at=START + timedelta(minutes=30))

    now = _authorize(client, platform.service, tid)["available"]
    clock.advance(timedelta(minutes=30))
    between = _authorize(client, platform.service, tid)
    clock.advance(timedelta(minutes=30))
    later = _authorize(client, platform.service, tid)["available"]

    assert (now, later) == ("2.00", "1.00")
    assert (between["allowed"], between["reason"]) == (False, "insufficient_credits")


def test_available_is_the_live_balance_after_usage(
    platform: Platform, client: TestClient, clock: FixedClock
) -> None:
    tid = platform.team().team_id
    platform.prepaid(tid, "0.10")
    clock.advance(timedelta(minutes=1))
    assert _authorize(client, platform.service, tid)["available"] == "0.10"

    platform.usage(event(tid, "e1", START, requests=4))
    assert _authorize(client, platform.service, tid)["available"] == "0.06"

    platform.usage(event(tid, "e2", START, requests=9))
    answer = _authorize(client, platform.service, tid)
    assert (answer["allowed"], answer["reason"], answer["available"]) == (
        False,
        "insufficient_credits",
        "0.00",
    )


def test_a_pay_as_you_go_team_is_allowed_at_zero_credit(
    platform: Platform, client: TestClient, ctx: Context
) -> None:
    tid = platform.team().team_id
    set_billing(ctx, tid, BillingMode.PAY_AS_YOU_GO)

    answer = _authorize(client, platform.service, tid)

    assert (answer["allowed"], answer["reason"], answer["available"]) == (True, "ok", "0.00")


def test_the_21st_request_in_a_minute_at_tier_0_is_rate_limited(
    platform: Platform, client: TestClient
) -> None:
    tid = platform.team().team_id
    platform.prepaid(tid, "1.00")

    answers = [_authorize(client, platform.service, tid) for _ in range(21)]

    assert [a["reason"] for a in answers] == ["ok"] * 20 + ["rate_limited"]
    last = answers[-1]
    assert last["allowed"] is False
    assert 1 <= last["retry_after_seconds"] <= 60
    assert last["available"] == "1.00"
    # Another team has its own count.
    other = platform.team().team_id
    platform.prepaid(other, "1.00")
    assert _authorize(client, platform.service, other)["reason"] == "ok"


def _set_lifetime_paid(ctx: Context, team_id: str, amount: str) -> None:
    engine = sa.create_engine(ctx.settings.database_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(
            tables.teams.update()
            .where(tables.teams.c.id == team_id)
            .values(lifetime_paid_nanos=nanos(amount), revision=tables.teams.c.revision + 1)
        )
    engine.dispose()


TIERS = [
    ("0.00", (0, 20, 8_192)),
    ("9.99", (0, 20, 8_192)),
    ("10.00", (1, 100, 16_384)),
    ("50.00", (2, 1_000, 16_384)),
    ("500.00", (3, 5_000, 32_768)),
    ("5000.00", (4, 10_000, 65_536)),
    ("1000000.00", (4, 10_000, 65_536)),
]


def test_the_tier_follows_the_lifetime_paid_amount(
    platform: Platform, client: TestClient, ctx: Context
) -> None:
    tid = platform.team().team_id
    platform.prepaid(tid, "1.00")

    seen = []
    for paid, _ in TIERS:
        _set_lifetime_paid(ctx, tid, paid)
        tier = _authorize(client, platform.service, tid)["tier"]
        seen.append((paid, (tier["level"], tier["requests_per_minute"], tier["max_output_tokens"])))

    assert seen == TIERS


def test_an_operator_tier_overrides_the_paid_amount_and_its_limit_applies(
    platform: Platform, client: TestClient, ctx: Context
) -> None:
    tid = platform.team().team_id
    platform.prepaid(tid, "1.00")
    _set_lifetime_paid(ctx, tid, "50.00")
    set_billing(ctx, tid, BillingMode.PREPAID, tier_override=0)

    answers = [_authorize(client, platform.service, tid) for _ in range(22)]

    assert answers[0]["tier"]["level"] == 0
    # Tier 0 allows 20 a minute. The sliding window weighs the minute before by its share
    # still covered, so requests that straddle the minute's turn may get one more.
    assert sum(a["allowed"] for a in answers) in (20, 21)
    assert answers[-1]["reason"] == "rate_limited"
    set_billing(ctx, tid, BillingMode.PREPAID, tier_override=5)
    assert _authorize(client, platform.service, tid)["tier"] == {
        "level": 5,
        "requests_per_minute": 50_000,
        "max_output_tokens": 131_072,
    }


def test_usage_through_one_instance_changes_the_answer_of_another_on_the_same_database(
    platform: Platform, database_url: str, clock: FixedClock
) -> None:
    """Each instance caches a team's grants by its revision; a charge in one process
    bumps the revision, so the other reloads rather than answering from a stale copy."""
    first_ctx = build_context(make_settings(database_url), clock=clock)
    second_ctx = build_context(make_settings(database_url), clock=clock)
    token = service_token(first_ctx)
    with (
        TestClient(create_app(first_ctx)) as first,
        TestClient(create_app(second_ctx)) as second,
    ):
        tid = platform.team().team_id
        platform.prepaid(tid, "0.05")
        clock.advance(timedelta(minutes=1))
        assert _authorize(second, token, tid)["available"] == "0.05"

        response = first.post(
            "/v1/usage-events",
            json={"events": [event(tid, "e1", START, requests=3)]},
            headers=bearer(token),
        )
        assert response.json()["accepted"] == 1
        assert _authorize(second, token, tid)["available"] == "0.02"

        first.post(
            "/v1/usage-events",
            json={"events": [event(tid, "e2", START, requests=3)]},
            headers=bearer(token),
        )
        answer = _authorize(second, token, tid)
        assert (answer["reason"], answer["available"]) == ("insufficient_credits", "0.00")

        set_billing(first_ctx, tid, BillingMode.PAY_AS_YOU_GO)
        assert _authorize(second, token, tid)["reason"] == "ok"


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        client.close()
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required but does not answer at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis does not answer at {REDIS_URL}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_two_instances_sharing_redis_share_the_rate_limit(
    platform: Platform, database_url: str, clock: FixedClock, redis_db: redis.Redis
) -> None:
    contexts = [
        build_context(make_settings(database_url, redis_url=REDIS_URL), clock=clock)
        for _ in range(2)
    ]
    token = service_token(contexts[0])
    with (
        TestClient(create_app(contexts[0])) as first,
        TestClient(create_app(contexts[1])) as second,
    ):
        tid = platform.team().team_id
        platform.prepaid(tid, "1.00")

        answers = [_authorize(first if i % 2 else second, token, tid) for i in range(20)]
        over = _authorize(first, token, tid), _authorize(second, token, tid)

    assert [a["reason"] for a in answers] == ["ok"] * 20
    assert [a["reason"] for a in over] == ["rate_limited", "rate_limited"]
    assert all(1 <= a["retry_after_seconds"] <= 60 for a in over)
    assert redis_db.dbsize() > 0


def test_authorizing_an_unknown_team_is_404(platform: Platform, client: TestClient) -> None:
    response = client.post(
        "/v1/authorize",
        json={
            "team_id": "team_00000000000000000000000000000000",
            "product": "serverless",
            "model": "llama",
        },
        headers=bearer(platform.service),
    )

    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_a_malformed_authorization_request_is_422(platform: Platform, client: TestClient) -> None:
    tid = platform.team().team_id
    changes: list[tuple[dict[str, Any], str]] = [
        ({"product": "training"}, "invalid_request"),
        ({"model": None}, "invalid_request"),
        ({"team_id": None}, "invalid_request"),
        ({"available": "100.00"}, "unknown_field"),
    ]

    answers = [
        client.post(
            "/v1/authorize",
            json={"team_id": tid, "product": "serverless", "model": "llama"} | change,
            headers=bearer(platform.service),
        )
        for change, _ in changes
    ]

    assert [(a.status_code, error_code(a)) for a in answers] == [(422, c) for _, c in changes]


def test_when_redis_does_not_answer_each_instance_still_limits_on_its_own(
    platform: Platform, database_url: str, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = "redis://127.0.0.1:1/0"
    context = build_context(make_settings(database_url, redis_url=unreachable), clock=clock)
    token = service_token(context)
    with TestClient(create_app(context)) as instance:
        tid = platform.team().team_id
        platform.prepaid(tid, "1.00")

        answers = [_authorize(instance, token, tid) for _ in range(21)]

    assert [a["reason"] for a in answers] == ["ok"] * 20 + ["rate_limited"]
    assert "Redis unavailable" in caplog.text


# --- what usage would reject is never served -----------------------------------


def _usage_code(platform: Platform, team_id: str, **where: Any) -> str | None:
    answer = platform.usage(event(team_id, uuid.uuid4().hex, START, requests=1, **where))
    rejected = answer["rejected"]
    return rejected[0]["code"] if rejected else None


@pytest.mark.parametrize(
    ("where", "code"),
    [
        pytest.param({"model": "gpt-9"}, "unknown_model", id="model"),
        pytest.param({"product": "container"}, "unknown_product", id="product"),
        pytest.param(
            {"product": "dedicated", "model": "llama", "gpu": "a100"}, "unknown_model", id="gpu"
        ),
    ],
)
def test_what_the_price_book_does_not_know_is_refused_as_its_usage_would_be(
    platform: Platform, client: TestClient, ctx: Context, where: dict[str, str], code: str
) -> None:
    platform.put_prices(
        price("llama", "requests", "0.01"),
        price(None, "gpu_seconds", "0.001", product="dedicated", gpu="h100"),
    )
    tid = platform.team().team_id
    platform.prepaid(tid, "1.00")
    set_billing(ctx, tid, BillingMode.PAY_AS_YOU_GO)

    answer = _authorize(client, platform.service, tid, **where)

    assert (answer["allowed"], answer["reason"], answer["available"]) == (False, code, "1.00")
    assert _usage_code(platform, tid, **where) == code
    assert _authorize(client, platform.service, tid)["reason"] == "ok"


def test_a_gpu_priced_for_a_product_is_served_for_any_model_on_it(
    platform: Platform, client: TestClient
) -> None:
    platform.put_prices(price(None, "requests", "0.01", product="dedicated", gpu="h100"))
    tid = platform.team().team_id
    platform.prepaid(tid, "1.00")
    where = {"product": "dedicated", "model": "my-finetune", "gpu": "h100"}

    answer = _authorize(client, platform.service, tid, **where)

    assert (answer["allowed"], answer["reason"]) == (True, "ok")
    assert _usage_code(platform, tid, **where) is None


def test_a_model_priced_only_for_the_team_is_served_to_that_team_alone(
    platform: Platform, client: TestClient
) -> None:
    priced, other = platform.team().team_id, platform.team().team_id
    for tid in (priced, other):
        platform.prepaid(tid, "1.00")
    assert _authorize(client, platform.service, priced, model="private")["reason"] == (
        "unknown_model"
    )

    response = client.put(
        f"/v1/teams/{priced}/pricing",
        json={"prices": [price("private", "requests", "0.02")]},
        headers=bearer(platform.operator),
    )
    assert response.status_code == 200, response.text

    assert _authorize(client, platform.service, priced, model="private")["reason"] == "ok"
    assert _authorize(client, platform.service, other, model="private")["reason"] == (
        "unknown_model"
    )
    assert _usage_code(platform, priced, model="private") is None


def test_a_new_price_book_written_by_another_instance_changes_the_answer_at_once(
    platform: Platform, database_url: str, clock: FixedClock
) -> None:
    """The price book is cached per process and checked against the newest version id
    read with the team row, so a book written elsewhere is seen by the next decision."""
    writer_ctx = build_context(make_settings(database_url), clock=clock)
    reader_ctx = build_context(make_settings(database_url), clock=clock)
    token = service_token(writer_ctx)
    with (
        TestClient(create_app(writer_ctx)) as writer,
        TestClient(create_app(reader_ctx)) as reader,
    ):
        tid = platform.team().team_id
        platform.prepaid(tid, "1.00")
        assert _authorize(reader, token, tid, model="gpt-9")["reason"] == "unknown_model"

        clock.advance(timedelta(seconds=1))
        response = writer.put(
            "/v1/prices",
            json=[price("llama", "requests", "0.01"), price("gpt-9", "requests", "0.01")],
            headers=bearer(platform.operator),
        )
        assert response.status_code == 200, response.text

        assert _authorize(reader, token, tid, model="gpt-9")["reason"] == "ok"


def test_without_any_price_book_nothing_is_served(client: TestClient, ctx: Context) -> None:
    platform = Platform.on(client, ctx)
    tid = platform.team().team_id
    set_billing(ctx, tid, BillingMode.PAY_AS_YOU_GO)

    answer = _authorize(client, platform.service, tid)

    assert (answer["allowed"], answer["reason"]) == (False, "unknown_product")
