"""The OpenAPI document describes the API a client meets: typed answers, every error status
with the one error shape, required headers, money patterns, and docs that work offline."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

Spec = dict[str, Any]
NOT_JSON = {
    "/metrics",
    "/v1/teams/{team_id}/credit-history.csv",
    "/v1/teams/{team_id}/invoices/{invoice_id}.pdf",
}


@pytest.fixture
def spec(client: TestClient) -> Spec:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    document: Spec = answer.json()
    return document


def _operations(spec: Spec) -> list[tuple[str, str, Spec]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def _resolve(spec: Spec, schema: Spec) -> Spec:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_success_answer_is_a_typed_model(spec: Spec) -> None:
    untyped = []
    for method, path, op in _operations(spec):
        for status, answer in op["responses"].items():
            if not status.startswith("2") or status == "204" or path in NOT_JSON:
                continue
            schema = answer["content"]["application/json"]["schema"]
            resolved = _resolve(spec, schema)
            if "$ref" not in schema or not resolved.get("properties"):
                untyped.append(f"{method} {path} {status}")
    assert untyped == []


def test_every_error_status_has_the_error_shape(spec: Spec) -> None:
    wrong = []
    for method, path, op in _operations(spec):
        for status, answer in op["responses"].items():
            if status.startswith(("4", "5")):
                schema = answer["content"]["application/json"]["schema"]
                if schema != {"$ref": "#/components/schemas/ErrorPublic"}:
                    wrong.append(f"{method} {path} {status}")
    assert wrong == []
    assert "HTTPValidationError" not in spec["components"]["schemas"]


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("POST", "/v1/teams/{team_id}/purchases", {"400", "401", "403", "404", "409", "422"}),
        ("GET", "/v1/teams/{team_id}/credit-history", {"400", "401", "403", "404", "422"}),
        ("POST", "/v1/login", {"400", "401", "413", "415", "422", "429"}),
        ("POST", "/v1/teams/{team_id}/promo-codes/redeem", {"409", "422", "429"}),
        ("POST", "/v1/usage-events", {"400", "401", "403", "413", "415", "422"}),
    ],
)
def test_operations_document_the_errors_they_answer(
    spec: Spec, method: str, path: str, statuses: set[str]
) -> None:
    assert statuses <= set(spec["paths"][path][method.lower()]["responses"])


def _idempotency_header(op: Spec) -> Spec:
    headers: list[Spec] = [p for p in op.get("parameters", []) if p["name"] == "Idempotency-Key"]
    assert len(headers) == 1
    return headers[0]


@pytest.mark.parametrize(
    ("path", "required"),
    [
        ("/v1/teams/{team_id}/purchases", True),
        ("/v1/teams/{team_id}/grants", True),
        ("/v1/promo-codes", False),
    ],
)
def test_idempotency_key_is_documented_as_required_where_it_is(
    spec: Spec, path: str, required: bool
) -> None:
    header = _idempotency_header(spec["paths"][path]["post"])
    assert header["in"] == "header"
    assert header["required"] is required
    assert header["schema"]["maxLength"] == 255


def test_money_fields_carry_their_pattern_in_and_out(spec: Spec) -> None:
    schemas = spec["components"]["schemas"]
    balance = schemas["AvailablePublic"]["properties"]["total"]
    assert re.fullmatch(balance["pattern"], "10.00")
    assert re.fullmatch(balance["pattern"], "-1.50")
    assert not re.fullmatch(balance["pattern"], "10")
    amount_in = schemas["PurchaseCreate"]["properties"]["amount"]
    assert re.fullmatch(amount_in["pattern"], "10.00")
    assert not re.fullmatch(amount_in["pattern"], "1e3")


def test_metrics_and_csv_are_declared_as_text(spec: Spec) -> None:
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert all(media.startswith("text/plain") for media in metrics)
    csv = spec["paths"]["/v1/teams/{team_id}/credit-history.csv"]["get"]["responses"]["200"]
    assert list(csv["content"]) == ["text/csv"]


def test_every_operation_answers_as_documented_for_an_anonymous_caller(
    client: TestClient, spec: Spec
) -> None:
    """A sweep with no token: each answer's status is one the document lists for it."""
    undocumented = []
    for method, path, op in _operations(spec):
        url = re.sub(r"\{[^}]+\}", "x_1", path)
        answer = client.request(
            method, url, json={} if method in ("POST", "PUT", "PATCH") else None
        )
        if str(answer.status_code) not in op["responses"]:
            undocumented.append(f"{method} {path} → {answer.status_code}")
    assert undocumented == []


def test_a_wrong_method_answers_405_with_every_allowed_method(client: TestClient) -> None:
    answer = client.request("OPTIONS", "/v1/prices")
    assert answer.status_code == 405
    assert set(answer.headers["Allow"].split(", ")) == {"GET", "HEAD", "PUT"}


def test_the_api_reference_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page.text)
    assert sources, "the page links its script and stylesheet"
    assert [s for s in sources if s.startswith(("http:", "https:", "//"))] == []
    for source in sources:
        assert client.get(source).status_code == 200, source
    assert "/openapi.json" in page.text
