"""Bad input gets a 4xx with its documented code and changes nothing (docs/quality.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditledger.domain.history import encode_cursor
from creditledger.entrypoints.api.limits import MAX_BODY_BYTES
from creditledger.services.context import Context
from tests.helpers import (
    Account,
    bearer,
    error_code,
    operator_token,
    service_token,
    sign_up,
    snapshot,
)

BAD_AMOUNTS = [
    pytest.param(5, id="json-integer"),
    pytest.param(5.5, id="json-float"),
    pytest.param("1e3", id="exponent"),
    pytest.param("-5.00", id="negative"),
    pytest.param("0", id="zero"),
    pytest.param("0.00", id="zero-decimals"),
    pytest.param("1.0000000001", id="ten-decimals"),
    pytest.param("100000.01", id="above-operator-maximum"),
    pytest.param("99999999999999", id="absurd"),
    pytest.param(True, id="boolean"),
    pytest.param(None, id="null"),
    pytest.param("NaN", id="nan"),
    pytest.param("1,000.00", id="thousands-separator"),
    pytest.param(" 5.00", id="space"),
    pytest.param("５.００", id="full-width"),
    pytest.param({"value": "5.00"}, id="object"),
]


@pytest.fixture
def team(client: TestClient) -> Account:
    return sign_up(client)


@pytest.fixture
def operator(ctx: Context) -> dict[str, str]:
    return bearer(operator_token(ctx))


def grant_request(
    client: TestClient, operator: dict[str, str], team: Account, body: Any, key: str = "k-1"
) -> Any:
    return client.post(
        f"/v1/teams/{team.team_id}/grants",
        headers=operator | {"Idempotency-Key": key},
        json=body,
    )


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_a_bad_amount_is_refused_and_grants_nothing(
    client: TestClient, team: Account, operator: dict[str, str], amount: object
) -> None:
    before = snapshot(client, team)
    response = grant_request(client, operator, team, {"amount": amount, "note": "x"})
    assert (response.status_code, error_code(response)) == (422, "invalid_amount")
    assert response.json()["error"]["param"] == "amount"
    assert snapshot(client, team) == before
    # The refusal did not use up the key.
    assert grant_request(client, operator, team, {"amount": "1.00", "note": "x"}).status_code == 201


@pytest.mark.parametrize("unknown", ["team_id", "role", "balance", "remaining", "kind"])
def test_an_unknown_field_in_a_grant_never_takes_effect(
    client: TestClient, team: Account, operator: dict[str, str], unknown: str
) -> None:
    before = snapshot(client, team)
    response = grant_request(client, operator, team, {"amount": "1.00", "note": "x", unknown: "1"})
    assert (response.status_code, error_code(response)) == (422, "unknown_field")
    assert response.json()["error"]["param"] == unknown
    assert snapshot(client, team) == before


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/signup",
            {"email": "x@example.com", "password": "p" * 12, "team_name": "T", "role": "admin"},
            "role",
        ),
        ("/v1/teams", {"name": "T", "balance": "100.00"}, "balance"),
        ("/v1/teams/{team}/members", {"email": "x@example.com", "team_id": "team_x"}, "team_id"),
    ],
)
def test_unknown_fields_are_refused_on_every_body(
    client: TestClient, team: Account, path: str, body: dict[str, Any], param: str
) -> None:
    response = client.post(path.format(team=team.team_id), headers=team.auth, json=body)
    assert (response.status_code, error_code(response)) == (422, "unknown_field")
    assert response.json()["error"]["param"] == param


def test_an_unknown_field_on_a_role_change_is_refused(client: TestClient, team: Account) -> None:
    response = client.patch(
        f"/v1/teams/{team.team_id}/members/{team.user_id}",
        headers=team.auth,
        json={"role": "admin", "team_id": "team_other"},
    )
    assert (response.status_code, error_code(response)) == (422, "unknown_field")


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/signup", {"email": 5, "password": "p" * 12, "team_name": "T"}, "email"),
        ("/v1/signup", {"email": "x@example.com", "password": ["p"], "team_name": "T"}, "password"),
        ("/v1/signup", {"email": "x@example.com", "password": "p" * 12}, "team_name"),
        ("/v1/login", {"email": "x@example.com", "password": None}, "password"),
        ("/v1/teams", {"name": 7}, "name"),
        ("/v1/teams/{team}/members", {"email": "x@example.com", "role": "owner"}, "role"),
        ("/v1/teams/{team}/members", {"email": "x@example.com", "role": 1}, "role"),
    ],
)
def test_a_wrong_type_is_an_invalid_request_naming_the_field(
    client: TestClient, team: Account, path: str, body: dict[str, Any], param: str
) -> None:
    response = client.post(path.format(team=team.team_id), headers=team.auth, json=body)
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("note", 5, "note"),
        ("expires_at", "next tuesday", "expires_at"),
        ("effective_at", 1732449600, "effective_at"),
        ("expires_at", "1893456000", "expires_at"),
        ("expires_at", "2027-01-01", "expires_at"),
        ("scope", "serverless", "scope"),
        ("scope", {"models": "llama"}, "scope.models"),
    ],
)
def test_a_wrong_type_in_a_grant_names_the_field_and_grants_nothing(
    client: TestClient, team: Account, operator: dict[str, str], field: str, value: Any, param: str
) -> None:
    before = snapshot(client, team)
    body = {"amount": "1.00", "note": "x"} | {field: value}
    response = grant_request(client, operator, team, body)
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert response.json()["error"]["param"] == param
    assert snapshot(client, team) == before


@pytest.mark.parametrize("content", [b"", b"[1, 2]", b'"a string"', b"null"])
def test_a_body_that_is_not_a_json_object_is_an_invalid_request(
    client: TestClient, team: Account, content: bytes
) -> None:
    response = client.post(
        "/v1/teams", headers=team.auth | {"Content-Type": "application/json"}, content=content
    )
    assert (response.status_code, error_code(response)) == (422, "invalid_request")


UNREADABLE = [
    pytest.param(b"not json", id="text"),
    pytest.param(b"{", id="truncated"),
    pytest.param(b'{"name": "T",}', id="trailing-comma"),
    pytest.param(b'{"name": "\xff\xfe"}', id="not-utf-8"),
    pytest.param(b"\x00\x01\x02\x89PNG", id="binary"),
    pytest.param(b'{"name": "\\ud800"}', id="lone-surrogate"),
    pytest.param(b'{"amount": NaN}', id="nan"),
    pytest.param(b"[" * 2000 + b"]" * 2000, id="too-deep"),
    pytest.param(b"   ", id="only-spaces"),
]


def _json_routes(team: Account, ctx: Context) -> list[tuple[str, str, dict[str, str]]]:
    operator = bearer(operator_token(ctx))
    service = bearer(service_token(ctx))
    key = {"Idempotency-Key": "k-unreadable"}
    return [
        ("POST", "/v1/signup", {}),
        ("POST", "/v1/login", {}),
        ("POST", "/v1/teams", team.auth),
        ("POST", f"/v1/teams/{team.team_id}/purchases", team.auth | key),
        ("POST", f"/v1/teams/{team.team_id}/grants", operator | key),
        ("POST", f"/v1/teams/{team.team_id}/promo-codes/redeem", team.auth),
        ("PUT", f"/v1/teams/{team.team_id}/auto-recharge", team.auth),
        ("PUT", "/v1/prices", operator),
        ("POST", "/v1/usage-events", service),
        ("POST", "/v1/authorize", service),
    ]


@pytest.mark.parametrize("content", UNREADABLE)
def test_an_unreadable_body_is_invalid_json_whatever_the_route(
    client: TestClient, ctx: Context, team: Account, content: bytes
) -> None:
    before = snapshot(client, team)
    for method, path, headers in _json_routes(team, ctx):
        response = client.request(
            method, path, headers=headers | {"Content-Type": "application/json"}, content=content
        )
        assert (response.status_code, error_code(response)) == (400, "invalid_json"), path
        assert "param" not in response.json()["error"], path
    assert snapshot(client, team) == before


def test_a_purchase_body_naming_the_amount_twice_buys_nothing(
    client: TestClient, team: Account
) -> None:
    before = snapshot(client, team)
    response = client.post(
        f"/v1/teams/{team.team_id}/purchases",
        headers=team.auth | {"Idempotency-Key": "k-dup", "Content-Type": "application/json"},
        content=b'{"amount": "10.00", "amount": "9999.00"}',
    )
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert response.json()["error"]["param"] == "amount"
    assert snapshot(client, team) == before
    retry = client.post(
        f"/v1/teams/{team.team_id}/purchases",
        headers=team.auth | {"Idempotency-Key": "k-dup"},
        json={"amount": "10.00"},
    )
    assert retry.status_code == 201, "a refused body leaves its Idempotency-Key unused"


def test_a_key_repeated_deep_inside_a_usage_batch_refuses_the_batch(
    client: TestClient, ctx: Context, team: Account
) -> None:
    before = snapshot(client, team)
    content = (
        b'{"events": [{"id": "e-1", "team_id": "%s", "team_id": "team_other",'
        b' "product": "serverless", "model": "m", "timestamp": "2026-11-24T12:00:00Z",'
        b' "quantities": {"input_tokens": 1}}]}' % team.team_id.encode()
    )
    response = client.post(
        "/v1/usage-events",
        headers=bearer(service_token(ctx)) | {"Content-Type": "application/json"},
        content=content,
    )
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert response.json()["error"]["param"] == "team_id"
    assert snapshot(client, team) == before


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_unsupported(
    client: TestClient, team: Account, operator: dict[str, str], content_type: str
) -> None:
    before = snapshot(client, team)
    response = client.post(
        f"/v1/teams/{team.team_id}/grants",
        headers=operator | {"Idempotency-Key": "k", "Content-Type": content_type},
        content=b'{"amount": "1.00", "note": "x"}',
    )
    assert (response.status_code, error_code(response)) == (415, "unsupported_media_type")
    assert snapshot(client, team) == before


def test_json_with_a_charset_is_json(client: TestClient, team: Account) -> None:
    response = client.post(
        "/v1/teams",
        headers=team.auth | {"Content-Type": "application/json; charset=utf-8"},
        content=b'{"name": "T"}',
    )
    assert response.status_code == 201


def test_an_oversized_body_is_refused_before_it_is_read(client: TestClient, team: Account) -> None:
    response = client.post(
        "/v1/teams",
        headers=team.auth | {"Content-Type": "application/json"},
        content=b" " * (MAX_BODY_BYTES + 1),
    )
    assert (response.status_code, error_code(response)) == (413, "payload_too_large")


def test_an_oversized_body_sent_in_chunks_is_refused(client: TestClient, team: Account) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(6):
            yield b" " * (1024 * 1024)

    response = client.post(
        "/v1/teams", headers=team.auth | {"Content-Type": "application/json"}, content=chunks()
    )
    assert (response.status_code, error_code(response)) == (413, "payload_too_large")


def test_a_small_body_sent_in_chunks_is_read_whole(client: TestClient, team: Account) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": '
        yield b'"Chunked"}'

    response = client.post(
        "/v1/teams", headers=team.auth | {"Content-Type": "application/json"}, content=chunks()
    )
    assert (response.status_code, response.json()["name"]) == (201, "Chunked")


LISTS = ["credits", "credit-history"]


@pytest.mark.parametrize("endpoint", LISTS)
@pytest.mark.parametrize("limit", ["0", "-1", "501", "99999999999999999999", "ten", "1.5"])
def test_a_limit_outside_1_to_500_is_refused(
    client: TestClient, team: Account, endpoint: str, limit: str
) -> None:
    response = client.get(
        f"/v1/teams/{team.team_id}/{endpoint}", headers=team.auth, params={"limit": limit}
    )
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert response.json()["error"]["param"] == "limit"


@pytest.mark.parametrize("endpoint", LISTS)
@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "aDE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5",  # "h1:" and 21 nines: past 64 bits
        "\x00",
        "aDE6MQ",  # "h1:1", a readable cursor of old: positions are sealed now
        "x" * 201,
    ],
)
def test_a_forged_cursor_is_refused(
    client: TestClient, team: Account, endpoint: str, cursor: str
) -> None:
    response = client.get(
        f"/v1/teams/{team.team_id}/{endpoint}", headers=team.auth, params={"cursor": cursor}
    )
    assert 400 <= response.status_code < 500, response.text
    assert error_code(response) in ("invalid_cursor", "invalid_request")


def test_a_cursor_is_good_for_the_team_it_was_made_for_only(
    client: TestClient, ctx: Context, team: Account
) -> None:
    other = sign_up(client)
    codec = ctx.cursors()

    own = client.get(
        f"/v1/teams/{team.team_id}/credit-history",
        headers=team.auth,
        params={"cursor": encode_cursor(codec, team.team_id, 2**63 - 1)},
    )
    foreign = client.get(
        f"/v1/teams/{team.team_id}/credit-history",
        headers=team.auth,
        params={"cursor": encode_cursor(codec, other.team_id, 2**63 - 1)},
    )

    assert own.status_code == 200
    assert all(e["grant_id"] is None or e["kind"] for e in own.json()["data"])
    assert (foreign.status_code, error_code(foreign)) == (400, "invalid_cursor")


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"type": "gift"}, "type"),
        ({"kind": "free"}, "kind"),
        ({"since": "yesterday"}, "since"),
        ({"since": "1732449600"}, "since"),
        ({"until": "2026-11-24T12:00:00"}, "until"),  # no zone
    ],
)
def test_a_bad_history_filter_is_refused(
    client: TestClient, team: Account, params: dict[str, str], param: str
) -> None:
    for suffix in ("", ".csv"):
        response = client.get(
            f"/v1/teams/{team.team_id}/credit-history{suffix}", headers=team.auth, params=params
        )
        assert (response.status_code, error_code(response)) == (422, "invalid_request")
        assert response.json()["error"]["param"] == param


def test_a_bad_credit_status_is_refused(client: TestClient, team: Account) -> None:
    response = client.get(
        f"/v1/teams/{team.team_id}/credits", headers=team.auth, params={"status": "gone"}
    )
    assert (response.status_code, response.json()["error"]["param"]) == (422, "status")


MALFORMED_IDS = [
    "team_00000000000000000000000000",
    "nothing",
    "%00",
    "team_%00",
    "TEAM_ABC",
    "x" * 300,
    "%E2%80%8Bteam",
    "team_abc%27%20OR%20%271%27=%271",
]


@pytest.mark.parametrize("team_id", MALFORMED_IDS)
def test_a_malformed_or_missing_team_id_is_not_found(
    client: TestClient, team: Account, team_id: str
) -> None:
    for path in ("", "/balance", "/credits", "/credit-history", "/credit-history.csv"):
        response = client.get(f"/v1/teams/{team_id}{path}", headers=team.auth)
        assert (response.status_code, error_code(response)) == (404, "not_found"), path


@pytest.mark.parametrize("grant_id", ["grant_00000000000000000000000000", "%00", "x" * 300])
def test_a_malformed_or_missing_grant_id_is_not_found(
    client: TestClient, team: Account, operator: dict[str, str], grant_id: str
) -> None:
    before = snapshot(client, team)
    response = client.post(f"/v1/teams/{team.team_id}/grants/{grant_id}/void", headers=operator)
    assert (response.status_code, error_code(response)) == (404, "not_found")
    assert snapshot(client, team) == before


@pytest.mark.parametrize("user_id", ["user_00000000000000000000000000", "%00", "x" * 300])
def test_a_malformed_or_missing_member_id_is_not_found(
    client: TestClient, team: Account, user_id: str
) -> None:
    url = f"/v1/teams/{team.team_id}/members/{user_id}"
    assert client.patch(url, headers=team.auth, json={"role": "admin"}).status_code == 404
    assert client.delete(url, headers=team.auth).status_code == 404


def test_another_teams_id_answers_exactly_like_a_missing_one(
    client: TestClient, team: Account
) -> None:
    other = sign_up(client, "other")
    theirs = client.get(f"/v1/teams/{other.team_id}/balance", headers=team.auth)
    missing = client.get("/v1/teams/team_00000000000000000000000000/balance", headers=team.auth)
    assert (theirs.status_code, theirs.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ada\u0000@example.com", "password": "p" * 12, "team_name": "T"},
        {"email": "x@example.com", "password": "p" * 12, "team_name": "T\u0000"},
        {"email": "x@example.com", "password": "p" * 12, "team_name": "T\u202e"},
    ],
)
def test_control_characters_in_a_signup_are_refused(
    client: TestClient, body: dict[str, str]
) -> None:
    response = client.post("/v1/signup", json=body)
    assert (response.status_code, error_code(response)) == (422, "invalid_request")


def test_a_nul_byte_in_a_grant_note_is_refused(
    client: TestClient, team: Account, operator: dict[str, str]
) -> None:
    response = grant_request(client, operator, team, {"amount": "1.00", "note": "a\u0000b"})
    assert (response.status_code, response.json()["error"]["param"]) == (422, "note")


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-11-24"])
def test_a_time_that_is_not_rfc_3339_with_a_zone_is_refused_by_the_usage_report(
    client: TestClient, team: Account, value: str
) -> None:
    response = client.get(
        f"/v1/teams/{team.team_id}/usage", headers=team.auth, params={"until": value}
    )
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert response.json()["error"]["param"] == "until"


def test_team_pricing_takes_its_start_only_as_rfc_3339(
    client: TestClient, team: Account, operator: dict[str, str]
) -> None:
    response = client.put(
        f"/v1/teams/{team.team_id}/pricing",
        headers=operator,
        json={"discount_percent": "10", "effective_from": 1700000000},
    )
    assert (response.status_code, error_code(response)) == (422, "invalid_request")
    assert response.json()["error"]["param"] == "effective_from"
