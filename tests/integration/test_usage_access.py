"""Who may call the usage, authorization and pricing endpoints (docs/api.md):
usage events and authorization need a service token; prices and team pricing are for
operators; a team's usage report is for its admins and operators, a member gets 403
and anyone else 404, exactly as for a missing team."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditledger.services.context import Context
from tests.conftest import START
from tests.helpers import Account, Platform, bearer, event, price, sign_up

MISSING_TEAM = "team_00000000000000000000000000000000"


@dataclass
class Cast:
    """Everyone who might call, around one team."""

    platform: Platform
    admin: Account
    member: Account
    outsider: Account
    removed: Account

    def headers(self, who: str) -> dict[str, str]:
        tokens = {
            "anonymous": None,
            "bad token": "clp_not-a-token",
            "admin": self.admin.token,
            "member": self.member.token,
            "admin of another team": self.outsider.token,
            "removed member": self.removed.token,
            "operator": self.platform.operator,
            "service": self.platform.service,
        }
        token = tokens[who]
        return {} if token is None else bearer(token)


@pytest.fixture
def cast(client: TestClient, ctx: Context) -> Cast:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    admin = sign_up(client, "admin")
    member = sign_up(client, "member")
    removed = sign_up(client, "removed")
    for person in (member, removed):
        response = client.post(
            f"/v1/teams/{admin.team_id}/members",
            json={"email": person.email, "role": "member"},
            headers=admin.auth,
        )
        assert response.status_code == 201, response.text
    response = client.delete(
        f"/v1/teams/{admin.team_id}/members/{removed.user_id}", headers=admin.auth
    )
    assert response.status_code == 204, response.text
    return Cast(platform, admin, member, sign_up(client, "outsider"), removed)


Call = Callable[[TestClient, Cast, dict[str, str]], Any]


def _usage_events(client: TestClient, cast: Cast, headers: dict[str, str]) -> Any:
    body = {"events": [event(cast.admin.team_id, "e1", START, requests=1)]}
    return client.post("/v1/usage-events", json=body, headers=headers)


def _authorize(client: TestClient, cast: Cast, headers: dict[str, str]) -> Any:
    body = {"team_id": cast.admin.team_id, "product": "serverless", "model": "llama"}
    return client.post("/v1/authorize", json=body, headers=headers)


def _put_prices(client: TestClient, cast: Cast, headers: dict[str, str]) -> Any:
    return client.put("/v1/prices", json=[price("llama", "requests", "0.02")], headers=headers)


def _get_prices(client: TestClient, cast: Cast, headers: dict[str, str]) -> Any:
    return client.get("/v1/prices", headers=headers)


def _team_pricing(client: TestClient, cast: Cast, headers: dict[str, str]) -> Any:
    return client.put(
        f"/v1/teams/{cast.admin.team_id}/pricing",
        json={"discount_percent": "50"},
        headers=headers,
    )


def _usage_report(client: TestClient, cast: Cast, headers: dict[str, str]) -> Any:
    return client.get(f"/v1/teams/{cast.admin.team_id}/usage", headers=headers)


CALLERS = (
    "anonymous",
    "bad token",
    "admin",
    "member",
    "admin of another team",
    "removed member",
    "operator",
    "service",
)
# Expected status per caller, in the order of CALLERS.
MATRIX: dict[str, tuple[Call, tuple[int, ...]]] = {
    "POST /v1/usage-events": (_usage_events, (401, 401, 403, 403, 403, 403, 403, 200)),
    "POST /v1/authorize": (_authorize, (401, 401, 403, 403, 403, 403, 403, 200)),
    "PUT /v1/prices": (_put_prices, (401, 401, 403, 403, 403, 403, 200, 403)),
    "GET /v1/prices": (_get_prices, (401, 401, 403, 403, 403, 403, 200, 403)),
    "PUT /v1/teams/{id}/pricing": (_team_pricing, (401, 401, 403, 403, 403, 403, 200, 403)),
    "GET /v1/teams/{id}/usage": (_usage_report, (401, 401, 200, 403, 404, 404, 200, 403)),
}
CODES = {200: None, 401: "unauthenticated", 403: "forbidden", 404: "not_found"}


@pytest.mark.parametrize("endpoint", list(MATRIX))
def test_each_caller_gets_the_documented_status(
    client: TestClient, cast: Cast, endpoint: str
) -> None:
    call, expected = MATRIX[endpoint]

    seen = []
    for who in CALLERS:
        response = call(client, cast, cast.headers(who))
        code = response.json()["error"]["code"] if response.status_code >= 400 else None
        seen.append((who, response.status_code, code))

    assert seen == [
        (who, status, CODES[status]) for who, status in zip(CALLERS, expected, strict=True)
    ]


def test_another_teams_usage_answers_exactly_like_a_missing_team(
    client: TestClient, cast: Cast
) -> None:
    outsider = cast.headers("admin of another team")

    theirs = client.get(f"/v1/teams/{cast.admin.team_id}/usage", headers=outsider)
    missing = client.get(f"/v1/teams/{MISSING_TEAM}/usage", headers=outsider)

    assert (theirs.status_code, theirs.json()) == (missing.status_code, missing.json())
    assert cast.admin.team_id not in theirs.text


def test_refused_calls_change_nothing(client: TestClient, cast: Cast, ctx: Context) -> None:
    for who in ("admin", "member", "operator"):
        assert _usage_events(client, cast, cast.headers(who)).status_code == 403
        assert (
            _put_prices(
                client, cast, cast.headers(who if who != "operator" else "service")
            ).status_code
            == 403
        )

    with ctx.uow(write=False) as uow:
        team = uow.teams.get(cast.admin.team_id)
        books = uow.pricing.books()
    assert team is not None and team.unpaid == 0
    assert [p.unit_price for b in books for p in b.prices] == [10_000_000]
