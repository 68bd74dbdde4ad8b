"""Grant scopes as the API writes them, and the status of a grant at a time."""

from __future__ import annotations

import pytest

from creditledger.domain.errors import InvalidScope
from creditledger.domain.grants import GrantStatus, Scope, UsageScope
from tests.builders import grant, scope
from tests.helpers import at


def test_no_scope_or_an_empty_one_means_unlimited() -> None:
    assert Scope.parse(None) is None
    assert Scope.parse({}) is None
    assert Scope.parse({"products": None, "models": None, "gpus": None}) is None


def test_a_scope_lists_any_combination_of_products_models_and_gpus() -> None:
    parsed = Scope.parse({"products": ["serverless"], "models": ["llama-3.1-70b", "mixtral"]})
    assert parsed == scope(products=["serverless"], models=["llama-3.1-70b", "mixtral"])
    assert parsed is not None
    assert parsed.to_dict() == {"products": ["serverless"], "models": ["llama-3.1-70b", "mixtral"]}


def test_a_scope_round_trips_through_its_dict() -> None:
    original = scope(products=["dedicated"], gpus=["h100", "a100"])
    assert Scope.parse(original.to_dict()) == original


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        pytest.param("serverless", "scope", id="not-an-object"),
        pytest.param(["serverless"], "scope", id="a-list"),
        pytest.param({"regions": ["eu"]}, "scope", id="unknown-dimension"),
        pytest.param({"products": []}, "scope.products", id="empty-list"),
        pytest.param({"products": "serverless"}, "scope.products", id="string-not-list"),
        pytest.param({"products": ["batch"]}, "scope.products", id="unknown-product"),
        pytest.param({"models": [5]}, "scope.models", id="not-a-string"),
        pytest.param({"models": [""]}, "scope.models", id="empty-string"),
        pytest.param({"models": ["llama 3"]}, "scope.models", id="space"),
        pytest.param({"models": ["-llama"]}, "scope.models", id="leading-dash"),
        pytest.param({"models": ["llama\x00"]}, "scope.models", id="nul"),
        pytest.param({"gpus": ["ｈ100"]}, "scope.gpus", id="full-width"),
        pytest.param({"gpus": ["x" * 129]}, "scope.gpus", id="too-long"),
        pytest.param({"models": [f"m{i}" for i in range(101)]}, "scope.models", id="too-many"),
    ],
)
def test_a_malformed_scope_is_refused_naming_the_field(raw: object, param: str) -> None:
    with pytest.raises(InvalidScope) as caught:
        Scope.parse(raw)
    assert caught.value.param == param
    assert caught.value.code == "invalid_scope"


def test_usage_is_in_scope_only_when_every_listed_dimension_contains_it() -> None:
    llama_on_serverless = scope(products=["serverless"], models=["llama"])
    assert llama_on_serverless.contains(UsageScope("serverless", "llama"))
    assert not llama_on_serverless.contains(UsageScope("serverless", "mixtral"))
    assert not llama_on_serverless.contains(UsageScope("dedicated", "llama"))
    assert scope(gpus=["h100"]).contains(UsageScope("dedicated", None, "h100"))
    assert not scope(gpus=["h100"]).contains(UsageScope("dedicated", None, None))


NOW = at("2026-11-24T12:00")


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({}, GrantStatus.ACTIVE),
        ({"remaining": "0"}, GrantStatus.DEPLETED),
        ({"effective": "2026-11-25"}, GrantStatus.SCHEDULED),
        ({"expires": "2026-11-24T12:00"}, GrantStatus.EXPIRED),
        ({"expires": "2026-11-24T12:00", "remaining": "0"}, GrantStatus.EXPIRED),
        ({"voided": "2026-11-20"}, GrantStatus.VOIDED),
        ({"voided": "2026-11-20", "expires": "2026-11-21"}, GrantStatus.VOIDED),
        ({"effective": "2026-11-25", "remaining": "0"}, GrantStatus.SCHEDULED),
    ],
)
def test_a_grant_status_follows_the_precedence_of_decision_0001(
    kwargs: dict[str, str], status: GrantStatus
) -> None:
    assert grant("promo", "5.00", **kwargs).status_at(NOW) is status  # type: ignore[arg-type]
