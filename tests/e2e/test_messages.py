"""Error messages speak to people: a value of the wrong type is described in the words
of JSON ("a JSON number", "null"), never by Python's type names ("not a NoneType"), and
never answered with a 500."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditledger.services.context import Context
from tests.conftest import START
from tests.helpers import Account, bearer, operator_token, service_token, sign_up

WRONG_TYPES: list[Any] = [None, 7, 1.5, True, [], ["x"], {}, {"a": 1}]
PYTHON_TYPE_NAME = re.compile(
    r"NoneType|\b(?:dict|int|str|bool|float|tuple|bytes)\b|\bnot an? list\b|<class "
)
_keys = itertools.count()


def _messages(response: Any) -> list[str]:
    body = response.json()
    found = [body["error"]["message"]] if "error" in body else []
    return found + [r["message"] for r in body.get("rejected", [])]


Send = Callable[[TestClient, dict[str, Any]], Any]


def _sender(
    method: str, path: str, base: dict[str, Any], who: str, idempotent: bool = False
) -> Callable[[TestClient, dict[str, str], str], Send]:
    def bind(client: TestClient, tokens: dict[str, str], team_id: str) -> Send:
        def send(client: TestClient, body: dict[str, Any]) -> Any:
            headers = bearer(tokens[who]) if who in tokens else {}
            if idempotent:
                headers["Idempotency-Key"] = f"key-{next(_keys)}"
            return client.request(
                method, path.format(team=team_id), json=base | body, headers=headers
            )

        return send

    return bind


PRICE = {"product": "serverless", "model": "llama", "meter": "requests", "per_units": 1}
EVENT = {
    "id": "e1",
    "product": "serverless",
    "model": "llama",
    "timestamp": START.isoformat(),
    "quantities": {"requests": 1},
}

# (request, the fields that take a string or an amount)
CASES = [
    (
        _sender("POST", "/v1/signup", {"email": "x@example.com", "password": "p" * 12}, ""),
        ["email", "password", "team_name"],
    ),
    (_sender("POST", "/v1/teams", {}, "admin"), ["name"]),
    (
        _sender("POST", "/v1/teams/{team}/grants", {"note": "n"}, "operator", idempotent=True),
        ["amount", "note", "effective_at", "expires_at"],
    ),
    (_sender("POST", "/v1/teams/{team}/purchases", {}, "admin", idempotent=True), ["amount"]),
    (
        _sender("PUT", "/v1/teams/{team}/auto-recharge", {"enabled": True}, "admin"),
        ["threshold", "restore_to"],
    ),
    (
        _sender("POST", "/v1/promo-codes", {"max_redemptions": 1}, "operator"),
        ["code", "amount", "redeem_by"],
    ),
    (_sender("POST", "/v1/teams/{team}/promo-codes/redeem", {}, "admin"), ["code"]),
    (
        _sender("POST", "/v1/authorize", {"product": "serverless"}, "service"),
        ["team_id", "model", "gpu"],
    ),
    (_sender("PUT", "/v1/teams/{team}/pricing", {}, "operator"), ["discount_percent"]),
]


@pytest.fixture
def tokens(client: TestClient, ctx: Context) -> tuple[dict[str, str], Account]:
    admin = sign_up(client)
    return {
        "admin": admin.token,
        "operator": operator_token(ctx),
        "service": service_token(ctx),
    }, admin


def test_a_field_of_the_wrong_type_is_named_in_plain_words(
    client: TestClient, tokens: tuple[dict[str, str], Account]
) -> None:
    by_role, admin = tokens
    bad: list[tuple[str, str, int, str]] = []
    for bind, fields in CASES:
        send = bind(client, by_role, admin.team_id)
        for field in fields:
            for value in WRONG_TYPES:
                response = send(client, {field: value})
                for message in _messages(response):
                    if response.status_code >= 500 or PYTHON_TYPE_NAME.search(message):
                        bad.append((field, repr(value), response.status_code, message))

    assert bad == []


def test_a_price_or_usage_event_of_the_wrong_type_is_named_in_plain_words(
    client: TestClient, tokens: tuple[dict[str, str], Account]
) -> None:
    by_role, admin = tokens
    bad = []
    for field in ("product", "model", "gpu", "meter", "unit_price"):
        for value in WRONG_TYPES:
            response = client.put(
                "/v1/prices",
                json=[PRICE | {"unit_price": "0.01"} | {field: value}],
                headers=bearer(by_role["operator"]),
            )
            bad += [(field, value, response.status_code, m) for m in _messages(response)]
    for field in ("id", "team_id", "product", "model", "gpu", "timestamp", "quantities"):
        for value in WRONG_TYPES:
            raw = EVENT | {"team_id": admin.team_id} | {field: value}
            response = client.post(
                "/v1/usage-events", json={"events": [raw]}, headers=bearer(by_role["service"])
            )
            bad += [(field, value, response.status_code, m) for m in _messages(response)]

    assert [b for b in bad if b[2] >= 500 or PYTHON_TYPE_NAME.search(b[3])] == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "null"),
        (7, "a JSON number"),
        (True, "true"),
        ([], "a JSON array"),
        ({}, "a JSON object"),
    ],
)
def test_an_amount_of_the_wrong_type_says_what_was_sent(
    client: TestClient, tokens: tuple[dict[str, str], Account], value: Any, words: str
) -> None:
    _, admin = tokens
    response = client.post(
        f"/v1/teams/{admin.team_id}/purchases",
        json={"amount": value},
        headers=bearer(admin.token) | {"Idempotency-Key": f"key-{next(_keys)}"},
    )

    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid_amount",
        "message": f'`amount` must be a decimal string in dollars such as "10.00", not {words}.',
        "param": "amount",
    }
