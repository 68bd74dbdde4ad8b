"""Balance and credits over HTTP (docs/api.md, Billing)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.domain.money import dollars
from creditledger.services.context import Context
from creditledger.services.payments import settle_offline_purchase
from tests.helpers import Account, error_code, operator_grant, operator_token, sign_up, spend

LLAMA = {"products": ["serverless"], "models": ["llama-3.1-70b"]}


def buy(ctx: Context, team_id: str, amount: str) -> str:
    """Prepaid credit from a settled payment; returns the grant id."""
    return settle_offline_purchase(ctx, team_id, dollars(amount), "pi_test")


def credits(client: TestClient, who: Account, **params: Any) -> Any:
    response = client.get(f"/v1/teams/{who.team_id}/credits", headers=who.auth, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def granted(response: Any) -> str:
    assert response.status_code == 201, response.text
    grant_id: str = response.json()["id"]
    return grant_id


def test_a_new_team_balance_shows_the_signup_credit_and_tier_zero(client: TestClient) -> None:
    ada = sign_up(client)
    balance = client.get(f"/v1/teams/{ada.team_id}/balance", headers=ada.auth).json()
    assert balance == {
        "available": {"total": "3.00", "promotional": "3.00", "prepaid": "0.00"},
        "held": "0.00",
        "unpaid_balance": "0.00",
        "billing_mode": "prepaid",
        "tier": {
            "level": 0,
            "requests_per_minute": 20,
            "max_output_tokens": 8192,
            "next_level_at": "10.00",
        },
        "lifetime_paid": "0.00",
    }


def test_the_balance_counts_only_active_credit(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    later = (clock.now() + timedelta(days=2)).isoformat()
    granted(operator_grant(client, op, ada.team_id, "7.00", effective_at=later))
    buy(ctx, ada.team_id, "20.00")
    spend(ctx, ada.team_id, dollars("1.00"))
    balance = client.get(f"/v1/teams/{ada.team_id}/balance", headers=ada.auth).json()
    assert balance["available"] == {"total": "22.00", "promotional": "2.00", "prepaid": "20.00"}


def test_usage_beyond_the_credits_shows_as_unpaid_balance(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    spend(ctx, ada.team_id, dollars("3.25"))
    balance = client.get(f"/v1/teams/{ada.team_id}/balance", headers=ada.auth).json()
    assert balance["available"]["total"] == "0.00"
    assert balance["unpaid_balance"] == "0.25"


def test_credits_are_listed_in_consumption_order(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    ada = sign_up(client)  # sign-up credit: promotional, unlimited, expiring in 30 days
    op = operator_token(ctx)
    soon = (clock.now() + timedelta(days=10)).isoformat()
    prepaid = buy(ctx, ada.team_id, "20.00")
    forever_unlimited = granted(operator_grant(client, op, ada.team_id, "2.00"))
    forever_limited = granted(operator_grant(client, op, ada.team_id, "25.00", scope=LLAMA))
    expiring_limited = granted(
        operator_grant(client, op, ada.team_id, "5.00", scope=LLAMA, expires_at=soon)
    )
    expiring_unlimited_soon = granted(
        operator_grant(client, op, ada.team_id, "1.00", expires_at=soon)
    )
    signup = next(c["id"] for c in credits(client, ada)["data"] if c["source"] == "signup")

    listed = [c["id"] for c in credits(client, ada)["data"]]

    assert listed == [
        expiring_limited,
        expiring_unlimited_soon,
        signup,
        forever_limited,
        forever_unlimited,
        prepaid,
    ]


def test_a_credit_shows_every_field_of_the_contract(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    granted(operator_grant(client, operator_token(ctx), ada.team_id, "5.00", scope=LLAMA))
    scoped = next(c for c in credits(client, ada)["data"] if c["scope"])
    assert scoped == {
        "id": scoped["id"],
        "kind": "promotional",
        "source": "manual",
        "amount": "5.00",
        "remaining": "5.00",
        "scope": LLAMA,
        "effective_at": "2026-11-24T12:00:00Z",
        "expires_at": None,
        "voided_at": None,
        "status": "active",
        "created_at": "2026-11-24T12:00:00Z",
    }


@pytest.fixture
def every_status(
    client: TestClient, ctx: Context, clock: FixedClock
) -> tuple[Account, dict[str, str]]:
    """A team with one credit in each status, the clock then moved a day on."""
    ada = sign_up(client)
    op = operator_token(ctx)
    start = clock.now()
    ids = {
        "expired": granted(
            operator_grant(
                client, op, ada.team_id, "1.00", expires_at=(start + timedelta(hours=1)).isoformat()
            )
        ),
        "scheduled": granted(
            operator_grant(
                client,
                op,
                ada.team_id,
                "1.00",
                effective_at=(start + timedelta(days=5)).isoformat(),
            )
        ),
        "voided": granted(operator_grant(client, op, ada.team_id, "1.00")),
        "depleted": buy(ctx, ada.team_id, "10.00"),
    }
    client.post(
        f"/v1/teams/{ada.team_id}/grants/{ids['voided']}/void",
        headers={"Authorization": f"Bearer {op}"},
    )
    clock.advance(timedelta(days=1))
    spend(ctx, ada.team_id, dollars("13.00"))  # sign-up 3.00, then the 10.00 purchase
    ids["active"] = buy(ctx, ada.team_id, "50.00")
    return ada, ids


@pytest.mark.parametrize("status", ["active", "depleted", "expired", "voided", "scheduled"])
def test_the_status_filter_lists_only_credits_in_that_status(
    client: TestClient, every_status: tuple[Account, dict[str, str]], status: str
) -> None:
    ada, ids = every_status
    listed = credits(client, ada, status=status)["data"]
    assert ids[status] in [c["id"] for c in listed]
    assert {c["status"] for c in listed} == {status}


def test_without_a_filter_or_with_all_every_credit_is_listed(
    client: TestClient, every_status: tuple[Account, dict[str, str]]
) -> None:
    ada, ids = every_status
    everything = credits(client, ada)
    assert credits(client, ada, status="all") == everything
    assert set(ids.values()) <= {c["id"] for c in everything["data"]}
    assert len(everything["data"]) == 6  # and the sign-up credit, now depleted


def test_the_credits_cursor_walks_every_credit_once_in_order(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    for n in range(6):
        granted(operator_grant(client, op, ada.team_id, f"{n + 1}.00"))
    everything = [c["id"] for c in credits(client, ada)["data"]]
    walked: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = credits(client, ada, **params)
        walked += [c["id"] for c in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == everything
    assert pages == 4  # 7 credits, 2 a page


def test_a_credits_cursor_that_was_never_given_out_is_refused(client: TestClient) -> None:
    ada = sign_up(client)
    response = client.get(
        f"/v1/teams/{ada.team_id}/credits", headers=ada.auth, params={"cursor": "grant_forged"}
    )
    assert (response.status_code, error_code(response)) == (400, "invalid_cursor")
