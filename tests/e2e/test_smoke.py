"""The shortest path through the service: sign up, see the sign-up credit."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import sign_up


def test_signup_gives_the_configured_promotional_credit(client: TestClient) -> None:
    ada = sign_up(client)
    balance = client.get(f"/v1/teams/{ada.team_id}/balance", headers=ada.auth).json()
    assert balance["available"] == {"total": "3.00", "promotional": "3.00", "prepaid": "0.00"}
    credits = client.get(f"/v1/teams/{ada.team_id}/credits", headers=ada.auth).json()["data"]
    assert [(c["source"], c["expires_at"]) for c in credits] == [("signup", "2026-12-24T12:00:00Z")]
