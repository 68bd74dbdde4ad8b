"""`since` after (or equal to) `until` is one mistake with one answer on every endpoint
that takes a period: 422 `invalid_request` with `param: "since"`."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.helpers import sign_up

PATHS = ["/credit-history", "/credit-history.csv", "/usage"]
LATER, EARLIER = "2026-11-25T00:00:00Z", "2026-11-24T00:00:00Z"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("since", "until"), [(LATER, EARLIER), (EARLIER, EARLIER)], ids=["after", "equal"]
)
def test_a_period_that_ends_before_it_starts_is_refused(
    client: TestClient, path: str, since: str, until: str
) -> None:
    admin = sign_up(client)

    response = client.get(
        f"/v1/teams/{admin.team_id}{path}",
        params={"since": since, "until": until},
        headers=admin.auth,
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"] == {
        "code": "invalid_request",
        "message": "`since` must be before `until`.",
        "param": "since",
    }


@pytest.mark.parametrize("path", PATHS)
def test_a_period_in_order_is_answered(client: TestClient, path: str) -> None:
    admin = sign_up(client)

    response = client.get(
        f"/v1/teams/{admin.team_id}{path}",
        params={"since": EARLIER, "until": LATER},
        headers=admin.auth,
    )

    assert response.status_code == 200, response.text
