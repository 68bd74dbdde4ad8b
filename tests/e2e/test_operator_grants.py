"""Operator grants with Idempotency-Key, and voids (docs/api.md, Operators)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from creditledger.adapters.clock import FixedClock
from creditledger.domain.errors import InvalidAmount, InvalidRequest
from creditledger.entrypoints.cli import app as cli_app
from creditledger.services.context import Context
from tests.helpers import bearer, error_code, operator_grant, operator_token, sign_up, snapshot


def test_an_operator_grant_is_promotional_manual_credit(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    response = operator_grant(
        client,
        operator_token(ctx),
        ada.team_id,
        "12.50",
        scope={"gpus": ["h100"]},
        expires_at="2027-01-01T00:00:00Z",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["source"], body["amount"], body["remaining"]) == (
        "promotional",
        "manual",
        "12.50",
        "12.50",
    )
    assert body["scope"] == {"gpus": ["h100"]}
    assert body["expires_at"] == "2027-01-01T00:00:00Z"
    assert body["status"] == "active"
    balance = client.get(f"/v1/teams/{ada.team_id}/balance", headers=ada.auth).json()
    assert balance["available"]["promotional"] == "15.50"
    entry = client.get(f"/v1/teams/{ada.team_id}/credit-history", headers=ada.auth).json()["data"][
        0
    ]
    assert (entry["type"], entry["amount"], entry["grant_id"]) == ("grant", "12.50", body["id"])
    assert entry["description"] == "Operator grant: Thanks"


def test_a_grant_effective_later_is_scheduled(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    ada = sign_up(client)
    later = (clock.now() + timedelta(days=3)).isoformat()
    body = operator_grant(client, operator_token(ctx), ada.team_id, effective_at=later).json()
    assert body["status"] == "scheduled"


def test_the_same_key_and_body_replay_the_first_answer(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    first = operator_grant(client, op, ada.team_id, "5.00", key="once")
    again = operator_grant(client, op, ada.team_id, "5.00", key="once")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    credits = client.get(f"/v1/teams/{ada.team_id}/credits", headers=ada.auth).json()["data"]
    assert [c["source"] for c in credits].count("manual") == 1


def test_the_replay_is_the_stored_answer_even_after_the_grant_changed(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    first = operator_grant(client, op, ada.team_id, "5.00", key="once").json()
    client.post(f"/v1/teams/{ada.team_id}/grants/{first['id']}/void", headers=bearer(op))
    assert operator_grant(client, op, ada.team_id, "5.00", key="once").json() == first


def test_the_same_key_with_another_body_is_refused(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    operator_grant(client, op, ada.team_id, "5.00", key="once")
    before = snapshot(client, ada)
    other = operator_grant(client, op, ada.team_id, "6.00", key="once")
    assert (other.status_code, error_code(other)) == (422, "idempotency_key_reused")
    assert snapshot(client, ada) == before


def test_keys_belong_to_their_caller(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    first = operator_grant(client, operator_token(ctx), ada.team_id, "5.00", key="shared")
    second = operator_grant(client, operator_token(ctx), ada.team_id, "5.00", key="shared")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


def test_a_grant_without_an_idempotency_key_is_refused(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    response = client.post(
        f"/v1/teams/{ada.team_id}/grants",
        headers=bearer(operator_token(ctx)),
        json={"amount": "5.00", "note": "x"},
    )
    assert (response.status_code, error_code(response)) == (400, "idempotency_key_required")
    assert response.json()["error"]["param"] == "Idempotency-Key"


@pytest.mark.parametrize("key", ["k" * 256, "tab\tkey"])
def test_a_malformed_idempotency_key_is_refused(client: TestClient, ctx: Context, key: str) -> None:
    ada = sign_up(client)
    before = snapshot(client, ada)
    response = operator_grant(client, operator_token(ctx), ada.team_id, key=key)
    assert (response.status_code, error_code(response)) == (400, "invalid_idempotency_key")
    assert snapshot(client, ada) == before


def test_a_key_of_255_characters_is_accepted(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    assert (
        operator_grant(client, operator_token(ctx), ada.team_id, key="k" * 255).status_code == 201
    )


def test_a_refused_request_releases_its_key_for_the_corrected_one(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    bad = operator_grant(client, op, ada.team_id, key="fix-me", expires_at="2020-01-01T00:00:00Z")
    assert (bad.status_code, bad.json()["error"]["param"]) == (422, "expires_at")
    assert operator_grant(client, op, ada.team_id, key="fix-me").status_code == 201


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"expires_at": "2026-11-24T12:00:00Z"}, "expires_at"),  # now: not in the future
        (
            {"effective_at": "2026-12-10T00:00:00Z", "expires_at": "2026-12-01T00:00:00Z"},
            "expires_at",
        ),
        ({"note": "   "}, "note"),
        ({"note": "line\nbreak"}, "note"),
        ({"expires_at": "2026-12-01T00:00:00"}, "expires_at"),  # no zone
        ({"scope": {"products": ["batch"]}}, "scope.products.0"),
        ({"scope": {"models": ["bad model"]}}, "scope.models"),
    ],
)
def test_a_grant_breaking_a_rule_is_refused_naming_the_field(
    client: TestClient, ctx: Context, fields: dict[str, object], param: str
) -> None:
    ada = sign_up(client)
    before = snapshot(client, ada)
    response = operator_grant(client, operator_token(ctx), ada.team_id, **fields)  # type: ignore[arg-type]
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param
    assert snapshot(client, ada) == before


def test_an_operator_grant_above_the_configured_maximum_is_refused(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    assert operator_grant(client, op, ada.team_id, "100000.00").status_code == 201
    too_much = operator_grant(client, op, ada.team_id, "100000.01")
    assert (too_much.status_code, error_code(too_much)) == (422, "invalid_amount")


def test_a_grant_for_a_missing_team_is_not_found(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    missing = ada.team_id[:-4] + "zzzz"
    response = operator_grant(client, operator_token(ctx), missing)
    assert (response.status_code, error_code(response)) == (404, "not_found")


def test_voiding_writes_off_what_remains_and_shows_in_history(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    grant = operator_grant(client, op, ada.team_id, "4.00").json()
    response = client.post(f"/v1/teams/{ada.team_id}/grants/{grant['id']}/void", headers=bearer(op))
    assert response.status_code == 200
    voided = response.json()
    assert (voided["status"], voided["remaining"], voided["amount"]) == ("voided", "0.00", "4.00")
    assert voided["voided_at"] == "2026-11-24T12:00:00Z"
    entry = client.get(f"/v1/teams/{ada.team_id}/credit-history", headers=ada.auth).json()["data"][
        0
    ]
    assert (entry["type"], entry["amount"], entry["grant_id"]) == ("void", "-4.00", grant["id"])
    assert entry["balance_after"] == "3.00"
    balance = client.get(f"/v1/teams/{ada.team_id}/balance", headers=ada.auth).json()
    assert balance["available"]["total"] == "3.00"


def test_a_grant_is_voided_once(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    grant_id = operator_grant(client, op, ada.team_id).json()["id"]
    url = f"/v1/teams/{ada.team_id}/grants/{grant_id}/void"
    assert client.post(url, headers=bearer(op)).status_code == 200
    before = snapshot(client, ada)
    twice = client.post(url, headers=bearer(op))
    assert (twice.status_code, error_code(twice)) == (409, "grant_already_voided")
    assert snapshot(client, ada) == before


def test_voiding_another_teams_grant_is_not_found(client: TestClient, ctx: Context) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    op = operator_token(ctx)
    bobs = operator_grant(client, op, bob.team_id).json()["id"]
    response = client.post(f"/v1/teams/{ada.team_id}/grants/{bobs}/void", headers=bearer(op))
    assert (response.status_code, error_code(response)) == (404, "not_found")
    bob_credits = client.get(f"/v1/teams/{bob.team_id}/credits", headers=bob.auth).json()["data"]
    assert {c["status"] for c in bob_credits} == {"active"}


def test_times_with_any_zone_are_stored_and_written_back_in_utc(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    body = operator_grant(
        client, operator_token(ctx), ada.team_id, expires_at="2027-01-01T02:30:00+02:30"
    ).json()
    assert body["expires_at"] == "2027-01-01T00:00:00Z"


# --- the command line: the same rules as the API --------------------------------------------


def grant_by_cli(database_url: str, team_id: str, amount: str, *extra: str) -> Result:
    args = ["grants", "create", "--team", team_id, "--amount", amount, *extra]
    return CliRunner().invoke(cli_app, args, env={"CREDITLEDGER_DATABASE_URL": database_url})


def test_the_cli_grants_promotional_credit_as_the_api_does(
    client: TestClient, ctx: Context, database_url: str
) -> None:
    ada = sign_up(client)
    result = grant_by_cli(database_url, ada.team_id, "25.00", "--note", "Outage credit")
    assert result.exit_code == 0, result.output
    assert f"granted 25.00 dollars to {ada.team_id}" in result.output
    credits = client.get(f"/v1/teams/{ada.team_id}/credits", headers=ada.auth).json()["data"]
    cli_grant = next(g for g in credits if g["source"] == "manual")
    assert (cli_grant["kind"], cli_grant["amount"]) == ("promotional", "25.00")


def test_the_cli_refuses_an_operator_grant_above_the_configured_maximum(
    client: TestClient, ctx: Context, database_url: str
) -> None:
    ada = sign_up(client)
    before = snapshot(client, ada)
    result = grant_by_cli(database_url, ada.team_id, "100000.01", "--note", "Too generous")
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidAmount)
    assert result.exception.param == "amount"
    assert snapshot(client, ada) == before


def test_the_cli_refuses_an_operator_grant_without_a_reason(
    client: TestClient, ctx: Context, database_url: str
) -> None:
    ada = sign_up(client)
    before = snapshot(client, ada)
    result = grant_by_cli(database_url, ada.team_id, "5.00", "--note", "  ")
    assert isinstance(result.exception, InvalidRequest)
    assert result.exception.param == "note"
    assert snapshot(client, ada) == before
