"""Promo codes through the HTTP API and the CLI, on both backends (docs/api.md)."""

from __future__ import annotations

import csv
import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from creditledger.adapters.clock import FixedClock
from creditledger.domain.errors import InvalidAmount
from creditledger.domain.promo_codes import MAX_FAILED_ATTEMPTS
from creditledger.entrypoints.cli import app as cli_app
from creditledger.services.context import Context
from tests.conftest import START
from tests.helpers import Account, bearer, error_code, operator_token, service_token, sign_up

_names = itertools.count(1)


@pytest.fixture
def op(ctx: Context) -> dict[str, str]:
    """Headers of an operator."""
    return bearer(operator_token(ctx))


def create(client: TestClient, op: dict[str, str], **body: Any) -> dict[str, Any]:
    """One code on the given terms (a fresh chosen text unless told); its {id, code}."""
    payload: dict[str, Any] = {"amount": "5.00", "max_redemptions": 10} | body
    if "count" not in payload:
        payload.setdefault("code", f"TESTCODE{next(_names)}")
    response = client.post("/v1/promo-codes", json=payload, headers=op)
    assert response.status_code == 201, response.text
    codes: list[dict[str, Any]] = response.json()["codes"]
    assert len(codes) == 1
    return codes[0]


def redeem(client: TestClient, who: Account, code: object, team_id: str | None = None) -> Any:
    return client.post(
        f"/v1/teams/{team_id or who.team_id}/promo-codes/redeem",
        json={"code": code},
        headers=who.auth,
    )


def show(client: TestClient, op: dict[str, str], promo_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/promo-codes/{promo_id}", headers=op)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def balance(client: TestClient, who: Account) -> str:
    response = client.get(f"/v1/teams/{who.team_id}/balance", headers=who.auth)
    total: str = response.json()["available"]["total"]
    return total


def promo_grants(client: TestClient, who: Account) -> list[dict[str, Any]]:
    credits = client.get(f"/v1/teams/{who.team_id}/credits", headers=who.auth).json()["data"]
    return [c for c in credits if c["source"] == "promo_code"]


def add_member(client: TestClient, admin: Account, role: str, name: str = "bob") -> Account:
    other = sign_up(client, name)
    response = client.post(
        f"/v1/teams/{admin.team_id}/members",
        json={"email": other.email, "role": role},
        headers=admin.auth,
    )
    assert response.status_code == 201, response.text
    return Account(other.email, other.token, admin.team_id, other.user_id)


# --- operators create, show and disable codes ----------------------------------------------


def test_an_operator_creates_a_chosen_code_and_sees_it_with_its_count(
    client: TestClient, op: dict[str, str]
) -> None:
    created = create(
        client,
        op,
        code="welcome-2026",
        amount="12.50",
        max_redemptions=100,
        scope={"products": ["serverless"], "models": ["llama-3-70b"]},
        redeem_by="2027-01-01T00:00:00Z",
        credit_valid_days=30,
    )
    assert created["id"].startswith("promo_")
    assert created["code"] == "WELCOME-2026"
    assert show(client, op, created["id"]) == {
        "id": created["id"],
        "code": "WELCOME-2026",
        "amount": "12.50",
        "scope": {"products": ["serverless"], "models": ["llama-3-70b"]},
        "valid_from": "2026-11-24T12:00:00Z",
        "redeem_by": "2027-01-01T00:00:00Z",
        "credit_expires_at": None,
        "credit_valid_days": 30,
        "max_redemptions": 100,
        "redemptions": 0,
        "disabled": False,
        "disabled_at": None,
        "created_at": "2026-11-24T12:00:00Z",
    }


def test_an_operator_creates_a_batch_of_random_readable_codes(
    client: TestClient, op: dict[str, str]
) -> None:
    response = client.post(
        "/v1/promo-codes",
        json={"count": 25, "amount": "1.00", "max_redemptions": 1},
        headers=op,
    )
    assert response.status_code == 201, response.text
    codes = response.json()["codes"]
    assert len(codes) == 25
    assert len({c["code"] for c in codes}) == len({c["id"] for c in codes}) == 25
    for c in codes:
        assert len(c["code"]) == 24
        assert c["code"].count("-") == 4
        assert not set(c["code"]) & set("01OILU")
    assert show(client, op, codes[7]["id"])["code"] == codes[7]["code"]


def test_redemptions_are_counted_and_shown(client: TestClient, op: dict[str, str]) -> None:
    promo = create(client, op, max_redemptions=3)
    for name in ("ada", "bea"):
        assert redeem(client, sign_up(client, name), promo["code"]).status_code == 201
    assert show(client, op, promo["id"])["redemptions"] == 2


def test_a_chosen_code_already_in_use_is_refused_whatever_its_spelling(
    client: TestClient, op: dict[str, str]
) -> None:
    create(client, op, code="SUMMER-SALE")
    response = client.post(
        "/v1/promo-codes",
        json={"code": "summer sale", "amount": "1.00", "max_redemptions": 1},
        headers=op,
    )
    assert response.status_code == 409
    assert error_code(response) == "promo_code_taken"


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"max_redemptions": 1}, "invalid_request", "amount"),
        ({"amount": "5.00"}, "invalid_request", "max_redemptions"),
        ({"amount": 5, "max_redemptions": 1}, "invalid_amount", "amount"),
        ({"amount": "0", "max_redemptions": 1}, "invalid_amount", "amount"),
        ({"amount": "-1.00", "max_redemptions": 1}, "invalid_amount", "amount"),
        ({"amount": "1e3", "max_redemptions": 1}, "invalid_amount", "amount"),
        ({"amount": "1.0000000001", "max_redemptions": 1}, "invalid_amount", "amount"),
        ({"amount": "100000.01", "max_redemptions": 1}, "invalid_amount", "amount"),
        ({"amount": "5.00", "max_redemptions": 0}, "invalid_request", "max_redemptions"),
        ({"amount": "5.00", "max_redemptions": "10"}, "invalid_request", "max_redemptions"),
        ({"amount": "5.00", "max_redemptions": True}, "invalid_request", "max_redemptions"),
        ({"amount": "5.00", "max_redemptions": 1, "count": 0}, "invalid_request", "count"),
        ({"amount": "5.00", "max_redemptions": 1, "count": 10_001}, "invalid_request", "count"),
        ({"amount": "5.00", "max_redemptions": 1, "count": 2.5}, "invalid_request", "count"),
        ({"amount": "5.00", "max_redemptions": 1, "count": 2, "code": "BOTH"}, None, "count"),
        ({"amount": "5.00", "max_redemptions": 1, "code": "ＦＵＬＬ"}, "invalid_request", "code"),
        ({"amount": "5.00", "max_redemptions": 1, "code": "A" * 65}, "invalid_request", "code"),
        ({"amount": "5.00", "max_redemptions": 1, "code": "ABC"}, "invalid_request", "code"),
        ({"amount": "5.00", "max_redemptions": 1, "code": 1234}, "invalid_request", "code"),
        (
            {
                "code": "TWOEXPIRIES",
                "amount": "5.00",
                "max_redemptions": 1,
                "credit_expires_at": "2027-01-01T00:00:00Z",
                "credit_valid_days": 30,
            },
            "invalid_request",
            "credit_valid_days",
        ),
        (
            {
                "code": "PASTDATE",
                "amount": "5.00",
                "max_redemptions": 1,
                "redeem_by": "2026-11-01T00:00:00Z",
            },
            "invalid_request",
            "redeem_by",
        ),
        (
            {
                "code": "NAIVEDATE",
                "amount": "5.00",
                "max_redemptions": 1,
                "redeem_by": "2027-01-01T00:00:00",
            },
            "invalid_request",
            "redeem_by",
        ),
        (
            {"code": "BADSCOPE", "amount": "5.00", "max_redemptions": 1, "scope": {"regions": []}},
            "unknown_field",
            "scope.regions",
        ),
        (
            {"code": "EXTRA", "amount": "5.00", "max_redemptions": 1, "team_id": "team_x"},
            "unknown_field",
            "team_id",
        ),
    ],
)
def test_bad_code_terms_are_refused_and_nothing_is_created(
    client: TestClient,
    op: dict[str, str],
    ctx: Context,
    body: dict[str, Any],
    code: str | None,
    param: str,
) -> None:
    if "code" not in body and "count" not in body:
        body = body | {"code": "NEVERMADE"}
    response = client.post("/v1/promo-codes", json=body, headers=op)
    assert response.status_code == 422, response.text
    assert error_code(response) == (code or "invalid_request")
    assert response.json()["error"]["param"] == param
    ada = sign_up(client)
    assert error_code(redeem(client, ada, "NEVERMADE")) == "promo_code_invalid"


def test_neither_code_nor_count_is_refused(client: TestClient, op: dict[str, str]) -> None:
    response = client.post(
        "/v1/promo-codes", json={"amount": "5.00", "max_redemptions": 1}, headers=op
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "count"


def test_with_an_idempotency_key_a_retried_batch_answers_the_same_codes(
    client: TestClient, op: dict[str, str]
) -> None:
    body = {"count": 3, "amount": "2.00", "max_redemptions": 1}
    headers = op | {"Idempotency-Key": "batch-2026-11"}
    first = client.post("/v1/promo-codes", json=body, headers=headers)
    again = client.post("/v1/promo-codes", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = client.post("/v1/promo-codes", json=body | {"count": 4}, headers=headers)
    assert other.status_code == 422
    assert error_code(other) == "idempotency_key_reused"


def test_a_disabled_code_is_refused_and_works_again_once_enabled(
    client: TestClient, op: dict[str, str]
) -> None:
    promo = create(client, op)
    ada = sign_up(client)
    response = client.patch(f"/v1/promo-codes/{promo['id']}", json={"disabled": True}, headers=op)
    assert response.status_code == 200
    assert response.json()["disabled"] is True
    assert response.json()["disabled_at"] == "2026-11-24T12:00:00Z"
    refused = redeem(client, ada, promo["code"])
    assert (refused.status_code, error_code(refused)) == (422, "promo_code_invalid")
    client.patch(f"/v1/promo-codes/{promo['id']}", json={"disabled": False}, headers=op)
    assert redeem(client, ada, promo["code"]).status_code == 201


@pytest.mark.parametrize("body", [{}, {"disabled": "yes"}, {"disabled": 1}, {"disabled": None}])
def test_disabling_takes_a_boolean(client: TestClient, op: dict[str, str], body: Any) -> None:
    promo = create(client, op)
    response = client.patch(f"/v1/promo-codes/{promo['id']}", json=body, headers=op)
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert show(client, op, promo["id"])["disabled"] is False


def test_an_unknown_promo_code_id_is_not_found(client: TestClient, op: dict[str, str]) -> None:
    missing = "promo_0000000000000000000000000000000a"
    assert client.get(f"/v1/promo-codes/{missing}", headers=op).status_code == 404
    response = client.patch(f"/v1/promo-codes/{missing}", json={"disabled": True}, headers=op)
    assert (response.status_code, error_code(response)) == (404, "not_found")


def test_only_operators_create_show_and_disable_codes(
    client: TestClient, op: dict[str, str], ctx: Context
) -> None:
    promo = create(client, op)
    ada = sign_up(client)
    body = {"code": "NOTMINE", "amount": "5.00", "max_redemptions": 1}
    callers = {"admin": ada.auth, "service": bearer(service_token(ctx))}
    for headers in callers.values():
        created = client.post("/v1/promo-codes", json=body, headers=headers)
        shown = client.get(f"/v1/promo-codes/{promo['id']}", headers=headers)
        patched = client.patch(
            f"/v1/promo-codes/{promo['id']}", json={"disabled": True}, headers=headers
        )
        assert [r.status_code for r in (created, shown, patched)] == [403, 403, 403]
        assert {error_code(r) for r in (created, shown, patched)} == {"forbidden"}
    anonymous = [
        client.post("/v1/promo-codes", json=body),
        client.get(f"/v1/promo-codes/{promo['id']}"),
        client.patch(f"/v1/promo-codes/{promo['id']}", json={"disabled": True}),
    ]
    assert [r.status_code for r in anonymous] == [401, 401, 401]
    assert show(client, op, promo["id"])["disabled"] is False
    assert error_code(redeem(client, ada, "NOTMINE")) == "promo_code_invalid"


# --- redemption ----------------------------------------------------------------------------


def test_a_valid_code_grants_its_credit_at_once_with_a_history_entry(
    client: TestClient, op: dict[str, str]
) -> None:
    promo = create(client, op, code="WELCOME-2026", amount="25.00")
    ada = sign_up(client)
    response = redeem(client, ada, "WELCOME-2026")
    assert response.status_code == 201, response.text
    grant = response.json()
    assert grant["id"].startswith("grant_")
    assert {k: grant[k] for k in ("kind", "source", "amount", "remaining", "status")} == {
        "kind": "promotional",
        "source": "promo_code",
        "amount": "25.00",
        "remaining": "25.00",
        "status": "active",
    }
    assert grant["effective_at"] == "2026-11-24T12:00:00Z"
    assert balance(client, ada) == "28.00"  # with the 3.00 sign-up credit
    history = client.get(f"/v1/teams/{ada.team_id}/credit-history", headers=ada.auth).json()
    newest = history["data"][0]
    assert newest["type"] == "grant"
    assert newest["amount"] == "25.00"
    assert newest["grant_id"] == grant["id"]
    assert newest["description"] == "Promo code WELCOME-2026"
    assert newest["balance_after"] == "28.00"
    assert newest["reference"] == promo["id"]


@pytest.mark.parametrize(
    "typed",
    ["welcome-2026", "WELCOME2026", "Welcome 2026", " w e l c o m e - 2 0 2 6 ", "WELCOME--2026"],
)
def test_codes_are_matched_ignoring_case_spaces_and_dashes(
    client: TestClient, op: dict[str, str], typed: str
) -> None:
    create(client, op, code="WELCOME-2026")
    response = redeem(client, sign_up(client), typed)
    assert response.status_code == 201, response.text


def test_a_generated_code_is_redeemable_typed_in_lower_case_without_dashes(
    client: TestClient, op: dict[str, str]
) -> None:
    response = client.post(
        "/v1/promo-codes", json={"count": 2, "amount": "3.00", "max_redemptions": 1}, headers=op
    )
    code = response.json()["codes"][1]["code"]
    assert redeem(client, sign_up(client), code.lower().replace("-", "")).status_code == 201


def test_the_credit_has_the_codes_scope(client: TestClient, op: dict[str, str]) -> None:
    scope = {"products": ["dedicated"], "gpus": ["h100"]}
    promo = create(client, op, scope=scope)
    ada = sign_up(client)
    grant = redeem(client, ada, promo["code"]).json()
    assert grant["scope"] == scope
    assert promo_grants(client, ada)[0]["scope"] == scope


def test_unscoped_code_gives_unlimited_credit(client: TestClient, op: dict[str, str]) -> None:
    promo = create(client, op)
    assert redeem(client, sign_up(client), promo["code"]).json()["scope"] is None


def test_the_credit_expires_on_the_codes_date(client: TestClient, op: dict[str, str]) -> None:
    promo = create(client, op, credit_expires_at="2027-03-01T00:00:00Z")
    grant = redeem(client, sign_up(client), promo["code"]).json()
    assert grant["expires_at"] == "2027-03-01T00:00:00Z"


def test_the_credit_expires_days_after_redemption(
    client: TestClient, op: dict[str, str], clock: FixedClock
) -> None:
    promo = create(client, op, credit_valid_days=14)
    clock.advance(timedelta(days=2, hours=3))
    grant = redeem(client, sign_up(client), promo["code"]).json()
    assert grant["effective_at"] == "2026-11-26T15:00:00Z"
    assert grant["expires_at"] == "2026-12-10T15:00:00Z"


def test_without_a_credit_expiry_the_credit_never_expires(
    client: TestClient, op: dict[str, str]
) -> None:
    promo = create(client, op)
    assert redeem(client, sign_up(client), promo["code"]).json()["expires_at"] is None


# --- refusals ------------------------------------------------------------------------------


def refused(response: Any, status: int, code: str) -> None:
    assert (response.status_code, error_code(response)) == (status, code), response.text
    error = response.json()["error"]
    assert error["param"] == "code"
    assert len(error["message"]) > 40


def test_an_unknown_code_is_invalid(client: TestClient) -> None:
    ada = sign_up(client)
    refused(redeem(client, ada, "NO-SUCH-CODE"), 422, "promo_code_invalid")
    assert balance(client, ada) == "3.00"


def test_a_code_not_yet_valid_is_invalid_until_it_is(
    client: TestClient, op: dict[str, str], clock: FixedClock
) -> None:
    promo = create(client, op, valid_from="2026-12-01T00:00:00Z")
    ada = sign_up(client)
    refused(redeem(client, ada, promo["code"]), 422, "promo_code_invalid")
    clock.advance(timedelta(days=6, hours=12))
    assert redeem(client, ada, promo["code"]).status_code == 201


def test_a_code_past_its_redeem_by_time_is_expired(
    client: TestClient, op: dict[str, str], clock: FixedClock
) -> None:
    promo = create(client, op, redeem_by="2026-12-01T00:00:00Z")
    ada, bea = sign_up(client, "ada"), sign_up(client, "bea")
    clock.advance(timedelta(days=6, hours=11, minutes=59, seconds=59))
    assert redeem(client, ada, promo["code"]).status_code == 201
    clock.advance(timedelta(seconds=1))
    refused(redeem(client, bea, promo["code"]), 422, "promo_code_expired")


def test_a_code_whose_credit_would_already_be_expired_is_expired(
    client: TestClient, op: dict[str, str], clock: FixedClock
) -> None:
    promo = create(client, op, credit_expires_at="2026-12-01T00:00:00Z")
    clock.advance(timedelta(days=7))
    refused(redeem(client, sign_up(client), promo["code"]), 422, "promo_code_expired")


def test_a_team_redeems_a_code_once_whichever_admin_asks(
    client: TestClient, op: dict[str, str], ctx: Context
) -> None:
    promo = create(client, op)
    ada = sign_up(client)
    other_admin = add_member(client, ada, "admin")
    assert redeem(client, ada, promo["code"]).status_code == 201
    refused(redeem(client, other_admin, promo["code"]), 409, "promo_code_already_redeemed")
    refused(redeem(client, ada, promo["code"].lower()), 409, "promo_code_already_redeemed")
    assert len(promo_grants(client, ada)) == 1
    assert show(client, op, promo["id"])["redemptions"] == 1


def test_once_every_redemption_is_claimed_the_limit_is_reached(
    client: TestClient, op: dict[str, str]
) -> None:
    promo = create(client, op, max_redemptions=2)
    for name in ("ada", "bea"):
        assert redeem(client, sign_up(client, name), promo["code"]).status_code == 201
    cyd = sign_up(client, "cyd")
    refused(redeem(client, cyd, promo["code"]), 409, "promo_code_limit_reached")
    assert balance(client, cyd) == "3.00"
    assert show(client, op, promo["id"])["redemptions"] == 2


def test_a_team_that_redeemed_hears_already_redeemed_even_when_the_limit_is_reached(
    client: TestClient, op: dict[str, str]
) -> None:
    promo = create(client, op, max_redemptions=1)
    ada = sign_up(client)
    assert redeem(client, ada, promo["code"]).status_code == 201
    refused(redeem(client, ada, promo["code"]), 409, "promo_code_already_redeemed")
    refused(redeem(client, sign_up(client, "bea"), promo["code"]), 409, "promo_code_limit_reached")


def test_expired_comes_before_already_redeemed_and_limit_reached(
    client: TestClient, op: dict[str, str], clock: FixedClock
) -> None:
    promo = create(client, op, max_redemptions=1, redeem_by="2026-11-25T00:00:00Z")
    ada = sign_up(client)
    assert redeem(client, ada, promo["code"]).status_code == 201
    clock.advance(timedelta(days=1))
    refused(redeem(client, ada, promo["code"]), 422, "promo_code_expired")
    refused(redeem(client, sign_up(client, "bea"), promo["code"]), 422, "promo_code_expired")


def test_invalid_comes_before_every_other_refusal(
    client: TestClient, op: dict[str, str], clock: FixedClock
) -> None:
    promo = create(client, op, max_redemptions=1, redeem_by="2026-11-25T00:00:00Z")
    ada = sign_up(client)
    assert redeem(client, ada, promo["code"]).status_code == 201
    client.patch(f"/v1/promo-codes/{promo['id']}", json={"disabled": True}, headers=op)
    clock.advance(timedelta(days=1))
    refused(redeem(client, ada, promo["code"]), 422, "promo_code_invalid")


# --- the throttle --------------------------------------------------------------------------


def test_more_than_ten_failures_in_an_hour_are_throttled(
    client: TestClient, op: dict[str, str]
) -> None:
    good = create(client, op)
    ada, bea = sign_up(client, "ada"), sign_up(client, "bea")
    for n in range(MAX_FAILED_ATTEMPTS):
        refused(redeem(client, ada, f"GUESS{n:04d}"), 422, "promo_code_invalid")
    throttled = redeem(client, ada, good["code"])
    assert (throttled.status_code, error_code(throttled)) == (429, "too_many_attempts")
    assert 3500 <= int(throttled.headers["Retry-After"]) <= 3600
    assert "try again in" in throttled.json()["error"]["message"]
    assert promo_grants(client, ada) == []
    # Another team is not affected.
    assert redeem(client, bea, good["code"]).status_code == 201


def test_every_kind_of_refusal_counts_as_a_failed_attempt(
    client: TestClient, op: dict[str, str], clock: FixedClock
) -> None:
    ada = sign_up(client)
    full = create(client, op, max_redemptions=1)
    assert redeem(client, sign_up(client, "bea"), full["code"]).status_code == 201
    mine = create(client, op)
    assert redeem(client, ada, mine["code"]).status_code == 201
    expiring = create(client, op, redeem_by="2026-11-24T13:00:00Z")
    late = create(client, op, valid_from="2026-12-24T00:00:00Z")
    clock.advance(timedelta(hours=2))
    attempts = [
        (full["code"], "promo_code_limit_reached"),
        (mine["code"], "promo_code_already_redeemed"),
        (expiring["code"], "promo_code_expired"),
        (late["code"], "promo_code_invalid"),
    ] * 3
    outcomes = [error_code(redeem(client, ada, code)) for code, _ in attempts[:11]]
    assert outcomes == [expected for _, expected in attempts[:10]] + ["too_many_attempts"]


def test_successes_malformed_input_and_refused_access_do_not_count(
    client: TestClient, op: dict[str, str]
) -> None:
    ada = sign_up(client)
    member = add_member(client, ada, "member")
    stranger = sign_up(client, "eve")
    for n in range(MAX_FAILED_ATTEMPTS - 1):
        refused(redeem(client, ada, f"GUESS{n:04d}"), 422, "promo_code_invalid")
    for _ in range(3):
        assert redeem(client, ada, create(client, op)["code"]).status_code == 201
        assert error_code(redeem(client, ada, "ＦＵＬＬＷＩＤＴＨ")) == "invalid_request"
        assert redeem(client, member, "GUESS").status_code == 403
        assert redeem(client, stranger, "GUESS", team_id=ada.team_id).status_code == 404
    refused(redeem(client, ada, "LAST-GUESS"), 422, "promo_code_invalid")
    assert error_code(redeem(client, ada, "ONE-TOO-MANY")) == "too_many_attempts"


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "",
        "   ",
        "-",
        "A" * 65,
        "WELCOME-2026" + " " * 53,
        "ＷＥＬＣＯＭＥ-２０２６",
        "WЕLCОMЕ-2026",  # Cyrillic look-alikes of E and O
        "WELCOME\u20132026",
        "WELCOME\u00a02026",
        "WELCOME\u200b2026",
        "WELCOME-2026\n",
        "WELCOME_2026",
        "'; DROP TABLE promo_codes; --",
    ],
)
def test_malformed_codes_are_refused_before_any_lookup(
    client: TestClient, op: dict[str, str], code: str
) -> None:
    promo = create(client, op, code="WELCOME-2026")
    ada = sign_up(client)
    response = redeem(client, ada, code)
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert response.json()["error"]["param"] == "code"
    assert balance(client, ada) == "3.00"
    assert show(client, op, promo["id"])["redemptions"] == 0


@pytest.mark.parametrize("code", [None, 2026, 20.26, True, ["WELCOME-2026"], {"code": "X"}])
def test_a_code_that_is_not_a_string_is_refused(
    client: TestClient, op: dict[str, str], code: object
) -> None:
    create(client, op, code="WELCOME-2026")
    ada = sign_up(client)
    response = redeem(client, ada, code)
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert response.json()["error"]["param"] == "code"
    assert balance(client, ada) == "3.00"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_request"),
        ({"code": "WELCOME-2026", "team_id": "team_x"}, "unknown_field"),
        ({"code": "WELCOME-2026", "amount": "1000.00"}, "unknown_field"),
        ([], "invalid_request"),
        ("WELCOME-2026", "invalid_request"),
    ],
)
def test_malformed_bodies_are_refused(
    client: TestClient, op: dict[str, str], body: Any, code: str
) -> None:
    create(client, op, code="WELCOME-2026")
    ada = sign_up(client)
    response = client.post(
        f"/v1/teams/{ada.team_id}/promo-codes/redeem", json=body, headers=ada.auth
    )
    assert (response.status_code, error_code(response)) == (422, code)
    assert balance(client, ada) == "3.00"


def test_sixty_four_characters_are_looked_up(client: TestClient, op: dict[str, str]) -> None:
    create(client, op, code="WELCOME-2026")
    refused(redeem(client, sign_up(client), "W" * 64), 422, "promo_code_invalid")
    assert redeem(client, sign_up(client), "WELCOME-2026" + " " * 52).status_code == 201


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    ada = sign_up(client)
    response = client.post(
        f"/v1/teams/{ada.team_id}/promo-codes/redeem",
        content=b"code=WELCOME",
        headers=ada.auth | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415


# --- who may redeem ------------------------------------------------------------------------


def test_members_may_not_redeem(client: TestClient, op: dict[str, str]) -> None:
    promo = create(client, op)
    ada = sign_up(client)
    member = add_member(client, ada, "member")
    response = redeem(client, member, promo["code"])
    assert (response.status_code, error_code(response)) == (403, "forbidden")
    assert show(client, op, promo["id"])["redemptions"] == 0


def test_admins_of_another_team_see_not_found(client: TestClient, op: dict[str, str]) -> None:
    promo = create(client, op)
    ada, eve = sign_up(client, "ada"), sign_up(client, "eve")
    response = redeem(client, eve, promo["code"], team_id=ada.team_id)
    missing = redeem(client, eve, promo["code"], team_id="team_0000000000000000000000000000000a")
    assert (response.status_code, error_code(response)) == (404, "not_found")
    assert response.json() == missing.json()
    assert promo_grants(client, ada) == []


def test_operators_services_and_anonymous_callers_may_not_redeem(
    client: TestClient, op: dict[str, str], ctx: Context
) -> None:
    promo = create(client, op)
    ada = sign_up(client)
    url = f"/v1/teams/{ada.team_id}/promo-codes/redeem"
    body = {"code": promo["code"]}
    assert client.post(url, json=body, headers=op).status_code == 403
    assert client.post(url, json=body, headers=bearer(service_token(ctx))).status_code == 403
    assert client.post(url, json=body).status_code == 401
    assert show(client, op, promo["id"])["redemptions"] == 0


def test_a_removed_admin_can_no_longer_redeem(client: TestClient, op: dict[str, str]) -> None:
    promo = create(client, op)
    ada = sign_up(client)
    other = add_member(client, ada, "admin")
    client.delete(f"/v1/teams/{ada.team_id}/members/{other.user_id}", headers=ada.auth)
    assert redeem(client, other, promo["code"]).status_code == 404


# --- the command line ----------------------------------------------------------------------


def run_cli(database_url: str, *args: str) -> Any:
    result = CliRunner().invoke(
        cli_app, list(args), env={"CREDITLEDGER_DATABASE_URL": database_url}, catch_exceptions=True
    )
    return result


def test_the_cli_writes_a_batch_of_codes_to_a_csv_file(
    client: TestClient, op: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "codes.csv"
    result = run_cli(
        database_url,
        "promo",
        "create",
        "--amount",
        "5.00",
        "--count",
        "4",
        "--max-redemptions",
        "2",
        "--valid-from",
        "2026-11-01",
        "--redeem-by",
        "2027-01-01T00:00:00Z",
        "--credit-valid-days",
        "30",
        "--scope-products",
        "serverless,dedicated",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "4 code(s) written" in result.output
    assert out.stat().st_mode & 0o077 == 0
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert rows[0]["amount"] == "5.00"
    assert rows[0]["valid_from"] == "2026-11-01T00:00:00Z"
    assert rows[0]["redeem_by"] == "2027-01-01T00:00:00Z"
    assert rows[0]["credit_valid_days"] == "30"
    ada = sign_up(client)
    grant = redeem(client, ada, rows[2]["code"]).json()
    assert (grant["amount"], grant["scope"]) == ("5.00", {"products": ["dedicated", "serverless"]})
    assert grant["expires_at"] == "2026-12-24T12:00:00Z"
    assert show(client, op, rows[2]["id"])["redemptions"] == 1


def test_the_cli_never_overwrites_a_file_and_then_creates_nothing(
    database_url: str, tmp_path: Path, client: TestClient
) -> None:
    out = tmp_path / "codes.csv"
    out.write_text("earlier batch\n")
    result = run_cli(
        database_url,
        "promo",
        "create",
        "--amount",
        "5.00",
        "--code",
        "FILEEXISTS",
        "--out",
        str(out),
    )
    assert result.exit_code == 2
    assert out.read_text() == "earlier batch\n"
    assert error_code(redeem(client, sign_up(client), "FILEEXISTS")) == "promo_code_invalid"


def test_the_cli_refuses_bad_terms_and_leaves_no_file(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "codes.csv"
    result = run_cli(
        database_url, "promo", "create", "--amount", "5", "--count", "0", "--out", str(out)
    )
    assert result.exit_code != 0
    assert "count" in str(result.exception)
    assert not out.exists()


def test_the_cli_refuses_a_promo_amount_above_the_operator_maximum_as_the_api_does(
    client: TestClient, op: dict[str, str], database_url: str
) -> None:
    result = run_cli(database_url, "promo", "create", "--amount", "100000.01", "--code", "TOO-MUCH")
    assert isinstance(result.exception, InvalidAmount)
    assert result.exception.param == "amount"
    assert error_code(redeem(client, sign_up(client), "TOO-MUCH")) == "promo_code_invalid"
    made = run_cli(database_url, "promo", "create", "--amount", "100000.00", "--code", "MOST")
    assert made.exit_code == 0, made.output


def test_the_cli_creates_a_chosen_code_and_disables_it(
    client: TestClient, op: dict[str, str], database_url: str, clock: FixedClock
) -> None:
    result = run_cli(
        database_url,
        "promo",
        "create",
        "--amount",
        "7.50",
        "--code",
        "cli-made",
        "--valid-from",
        START.isoformat(),
        "--max-redemptions",
        "5",
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "CLI-MADE"
    ada = sign_up(client)
    assert redeem(client, ada, "cli made").json()["amount"] == "7.50"
    promo_id = client.get(f"/v1/teams/{ada.team_id}/credits", headers=ada.auth).json()["data"]
    reference = client.get(f"/v1/teams/{ada.team_id}/credit-history", headers=ada.auth).json()
    promo_id = reference["data"][0]["reference"]
    result = run_cli(database_url, "promo", "disable", promo_id)
    assert result.exit_code == 0, result.output
    assert "disabled (1 of 5 redeemed)" in result.output
    refused(redeem(client, sign_up(client, "bea"), "CLI-MADE"), 422, "promo_code_invalid")
    assert run_cli(database_url, "promo", "enable", promo_id).exit_code == 0
    assert redeem(client, sign_up(client, "cyd"), "CLI-MADE").status_code == 201
