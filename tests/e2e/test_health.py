"""Health, metrics and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.bootstrap import build_context
from creditledger.entrypoints.api.app import create_app
from tests.conftest import START, make_settings

# Every endpoint of docs/api.md that exists so far.
ENDPOINTS = {
    ("POST", "/v1/signup"),
    ("POST", "/v1/login"),
    ("POST", "/v1/teams"),
    ("GET", "/v1/teams/{team_id}"),
    ("POST", "/v1/teams/{team_id}/members"),
    ("PATCH", "/v1/teams/{team_id}/members/{user_id}"),
    ("DELETE", "/v1/teams/{team_id}/members/{user_id}"),
    ("GET", "/v1/teams/{team_id}/balance"),
    ("GET", "/v1/teams/{team_id}/credits"),
    ("GET", "/v1/teams/{team_id}/credit-history"),
    ("GET", "/v1/teams/{team_id}/credit-history.csv"),
    ("POST", "/v1/teams/{team_id}/grants"),
    ("POST", "/v1/teams/{team_id}/grants/{grant_id}/void"),
    ("POST", "/v1/teams/{team_id}/promo-codes/redeem"),
    ("POST", "/v1/promo-codes"),
    ("GET", "/v1/promo-codes/{promo_id}"),
    ("PATCH", "/v1/promo-codes/{promo_id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}


def test_healthz_answers_while_the_process_is_up(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_answers_ready_on_a_migrated_database(client: TestClient) -> None:
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


@pytest.fixture
def unmigrated_client(tmp_path: Path) -> Iterator[TestClient]:
    ctx = build_context(
        make_settings(f"sqlite:///{tmp_path / 'empty.db'}"), clock=FixedClock(START)
    )
    with TestClient(create_app(ctx), raise_server_exceptions=False) as test_client:
        yield test_client
    ctx.uow.dispose()


def test_readyz_says_not_ready_before_migrations(unmigrated_client: TestClient) -> None:
    response = unmigrated_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"
    assert "creditledger migrate" in response.json()["error"]["message"]
    assert unmigrated_client.get("/healthz").status_code == 200


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/v1/teams/team_nothing")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "creditledger_http_requests_total" in text
    assert 'route="/v1/teams/{team_id}"' in text
    assert "team_nothing" not in text


def test_the_openapi_document_lists_every_foundation_route(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    listed = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert listed >= ENDPOINTS, sorted(ENDPOINTS - listed)


@pytest.mark.parametrize(("method", "path"), sorted(ENDPOINTS))
def test_every_documented_route_is_served(client: TestClient, method: str, path: str) -> None:
    concrete = path.format(
        team_id="team_x", user_id="user_x", grant_id="grant_x", promo_id="promo_x"
    )
    response = client.request(method, concrete)
    assert response.status_code != 405
    if response.status_code == 404:  # a service's 404, not the router's "no such route"
        assert response.json()["error"]["message"] != "Not Found"


def test_the_openapi_document_says_money_is_a_decimal_string(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    amount = document["components"]["schemas"]["GrantCreate"]["properties"]["amount"]
    assert amount["type"] == "string"
    assert amount["pattern"] == r"^[0-9]+(\.[0-9]{1,9})?$"


def test_unknown_paths_answer_with_the_error_shape(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
