"""POST /v1/authorize in front of the framework: the plain requests are answered by
``AuthorizeFastPath``, everything else by the documented route, and both answer the
same request the same way, errors included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from creditledger.domain.accounts import BillingMode
from creditledger.domain.holds import Hold
from creditledger.domain.tiers import DEFAULT_TIERS
from creditledger.entrypoints.api import fast_authorize
from creditledger.entrypoints.api.schemas import authorize_public
from creditledger.services.authorize import Decision
from creditledger.services.context import Context
from tests.helpers import Platform, bearer, price, set_billing


@pytest.mark.parametrize(
    "decision",
    [
        Decision(True, "ok", DEFAULT_TIERS[2], 1_234_567_891),
        Decision(False, "insufficient_credits", DEFAULT_TIERS[0], 0),
        Decision(False, "rate_limited", DEFAULT_TIERS[1], 5, retry_after_seconds=17),
        Decision(
            True,
            "ok",
            DEFAULT_TIERS[5],
            10**12,
            hold=Hold("hold_1", "team_1", 50_000_000, datetime(2026, 12, 4, 1, 2, 3, tzinfo=UTC)),
        ),
        Decision(
            True,
            "ok",
            DEFAULT_TIERS[1],
            7_400,
            hold=Hold(
                "hold_2",
                "team_1",
                1,
                datetime(2026, 12, 4, 3, 2, 3, 450, tzinfo=timezone(timedelta(hours=2))),
            ),
        ),
    ],
)
def test_the_fast_answer_is_the_documented_model_field_for_field(decision: Decision) -> None:
    fast = orjson.loads(fast_authorize.encode_answer(decision))
    assert fast == authorize_public(decision).model_dump(mode="json", exclude_none=True)
    assert list(fast) == [
        k for k in authorize_public(decision).model_dump(exclude_none=True) if k in fast
    ]


@pytest.fixture
def gateway(client: TestClient, ctx: Context) -> tuple[Platform, str]:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    team_id = platform.team().team_id
    platform.promo(team_id, "1.00")
    set_billing(ctx, team_id, BillingMode.PREPAID, tier_override=3)
    return platform, team_id


@pytest.fixture
def answered_fast(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The answers the fast path encoded."""
    seen: list[bytes] = []
    encode = fast_authorize.encode_answer

    def spy(decision: Decision) -> bytes:
        seen.append(encode(decision))
        return seen[-1]

    monkeypatch.setattr(fast_authorize, "encode_answer", spy)
    return seen


def _post(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(
        "/v1/authorize", content=body, headers={"Content-Type": "application/json", **headers}
    )


def test_a_plain_request_is_answered_in_front_and_counted_in_the_metrics(
    client: TestClient, gateway: tuple[Platform, str], answered_fast: list[bytes]
) -> None:
    platform, team_id = gateway
    body = orjson.dumps({"team_id": team_id, "product": "serverless", "model": "llama"})
    response = _post(client, body, bearer(platform.service))
    assert response.status_code == 200
    assert answered_fast == [response.content]
    assert response.json()["available"] == "1.00"
    assert response.headers["content-type"] == "application/json"
    metrics = client.get("/metrics").text
    assert 'route="/v1/authorize",status="200"' in metrics


@pytest.mark.parametrize(
    "variant",
    [
        # Each goes the framework's way and must answer as the fast path does.
        lambda team: (
            b'{"team_id": "%s", "product": "serverless", "model": "ll\\u0061ma"}' % team,
            "Bearer",
        ),
        lambda team: (
            b'{"team_id": "%s", "product": "serverless", "model": "llama"}' % team,
            "bearer",
        ),
    ],
)
def test_the_route_and_the_fast_path_give_the_same_answer(
    client: TestClient, gateway: tuple[Platform, str], answered_fast: list[bytes], variant: Any
) -> None:
    platform, team_id = gateway
    plain = orjson.dumps({"team_id": team_id, "product": "serverless", "model": "llama"})
    fast = _post(client, plain, bearer(platform.service))
    body, scheme = variant(team_id.encode())
    other = _post(client, body, {"Authorization": f"{scheme} {platform.service}"})
    assert other.status_code == fast.status_code == 200
    assert other.json() == fast.json()


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (
            b'{"team_id": "t", "team_id": "u", "product": "serverless", "model": "m"}',
            422,
            "invalid_request",
            "team_id",
        ),
        (
            b'{"team_id": "t", "product": "serverless", "model": "m", "extra": 1}',
            422,
            "unknown_field",
            "extra",
        ),
        (b'{"team_id": "t", "product": "tpu", "model": "m"}', 422, "invalid_request", "product"),
        (b'{"team_id": "t", "product": "serverless"}', 422, "invalid_request", "model"),
        (
            b'{"team_id": 7, "product": "serverless", "model": "m"}',
            422,
            "invalid_request",
            "team_id",
        ),
        (b'{"team_id": "t", "product": "serverless", "model": "m"', 400, "invalid_json", None),
        (b"[]", 422, "invalid_request", None),
    ],
)
def test_bodies_the_fast_path_does_not_take_get_the_routes_errors(
    client: TestClient,
    gateway: tuple[Platform, str],
    answered_fast: list[bytes],
    body: bytes,
    status: int,
    code: str | None,
    param: str | None,
) -> None:
    platform, _ = gateway
    response = _post(client, body, bearer(platform.service))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if code is not None:
        assert error["code"] == code
    assert error.get("param") == param
    assert answered_fast == []


def test_domain_errors_in_front_are_the_routes_errors(
    client: TestClient, gateway: tuple[Platform, str], answered_fast: list[bytes]
) -> None:
    platform, team_id = gateway
    unknown = orjson.dumps({"team_id": "team_nope", "product": "serverless", "model": "llama"})
    response = _post(client, unknown, bearer(platform.service))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    known = orjson.dumps({"team_id": team_id, "product": "serverless", "model": "llama"})
    for headers in ({"Authorization": "Bearer cl_wrong"}, {}):
        refused = _post(client, known, headers)
        assert refused.status_code == 401, refused.text
    bad_estimate = orjson.dumps(
        {
            "team_id": team_id,
            "product": "serverless",
            "model": "llama",
            "request_id": "r1",
            "estimate": {"amount": "-1"},
        }
    )
    response = _post(client, bad_estimate, bearer(platform.service))
    assert response.status_code in (400, 422)
    assert response.json()["error"]["param"].startswith("estimate")
    assert answered_fast == []


def test_a_chunked_or_oversized_body_goes_the_framework_way(
    client: TestClient, gateway: tuple[Platform, str], answered_fast: list[bytes]
) -> None:
    platform, team_id = gateway
    body = orjson.dumps({"team_id": team_id, "product": "serverless", "model": "llama"})
    chunked = client.post(
        "/v1/authorize",
        content=iter([body[:10], body[10:]]),
        headers={"Content-Type": "application/json", **bearer(platform.service)},
    )
    assert chunked.status_code == 200 and chunked.json()["allowed"] is True
    padded = body[:-1] + b"," + b" " * fast_authorize.MAX_BYTES + b'"gpu": null}'
    big = _post(client, padded, bearer(platform.service))
    assert big.status_code == 200 and big.json()["allowed"] is True
    assert answered_fast == []


def test_a_key_twice_inside_the_estimate_is_the_routes_to_refuse(
    client: TestClient, gateway: tuple[Platform, str], answered_fast: list[bytes]
) -> None:
    """The route refuses a key given twice at any depth; the fast path takes no such body,
    whatever the names (here the estimate's own), and never places its hold."""
    platform, team_id = gateway
    for estimate in (
        b'{"amount": "0.01", "amount": "0.99"}',
        b'{"quantities": {"requests": 1, "requests": 99}}',
    ):
        body = (
            b'{"team_id": "%s", "product": "serverless", "model": "llama", ' % (team_id.encode())
            + b'"request_id": "r-dup", "estimate": %s}' % estimate
        )
        response = _post(client, body, bearer(platform.service))
        assert (response.status_code, response.json()["error"]["code"]) == (
            422,
            "invalid_request",
        ), response.text
    assert answered_fast == []
    balance = client.get(f"/v1/teams/{team_id}/balance", headers=bearer(platform.operator))
    assert balance.json()["held"] == "0.00"
