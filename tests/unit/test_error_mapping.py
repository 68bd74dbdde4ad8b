"""Every error class answers a deliberate status with its own code; nothing falls to 500."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import creditledger
from creditledger.domain import errors as e
from creditledger.domain.promo_codes import Refusal, refusal_error
from creditledger.entrypoints.api.errors import STATUS, install, status_of


def _all_error_classes() -> list[type[e.CreditLedgerError]]:
    for module in pkgutil.walk_packages(creditledger.__path__, "creditledger."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    found: list[type[e.CreditLedgerError]] = []
    todo = [e.CreditLedgerError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.__name__)


ERRORS = _all_error_classes()


def _instance(cls: type[e.CreditLedgerError]) -> e.CreditLedgerError:
    parameters = inspect.signature(cls.__init__).parameters
    if "retry_after" in parameters:
        return cls("Try again later.", retry_after=7)  # type: ignore[call-arg]
    if "code" in parameters:
        return cls("unknown_model", "No price for this model.")  # type: ignore[call-arg]
    return cls("Something a person can act on.")


def test_every_error_class_lives_in_the_one_tree() -> None:
    strays = [cls.__qualname__ for cls in ERRORS if cls.__module__ != e.__name__]
    assert strays == []


def test_every_error_class_is_drawn_in_the_tree_docstring() -> None:
    assert e.__doc__ is not None
    drawn = set(re.findall(r"[─ ]([A-Z][A-Za-z]+)\b", e.__doc__))
    missing = [cls.__name__ for cls in ERRORS if cls.__name__ not in drawn]
    assert missing == []


def test_every_listed_status_is_an_error_status() -> None:
    assert all(400 <= status <= 599 for status in STATUS.values())


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_each_error_answers_its_status_and_code(cls: type[e.CreditLedgerError]) -> None:
    error = _instance(cls)
    status = status_of(error)
    internal = issubclass(cls, e.InternalError) or cls is e.CreditLedgerError
    if internal:
        assert status == 500
    else:
        assert 400 <= status < 500 or status == 503, f"{cls.__name__} answers {status}"

    app = FastAPI()
    install(app)

    @app.get("/boom")
    def boom() -> None:
        raise error

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom")
    assert answer.status_code == status
    body = answer.json()["error"]
    assert body["code"] == error.code
    if not internal:
        assert body["message"] == error.message
    if error.retry_after is not None:
        assert answer.headers["Retry-After"] == str(error.retry_after)


def test_a_subclass_without_its_own_row_answers_like_its_parent() -> None:
    class NewConflict(e.Conflict):
        code = "new_conflict"

    assert status_of(NewConflict("x")) == 409


@pytest.mark.parametrize("reason", list(Refusal))
def test_each_promo_refusal_has_its_own_error(reason: Refusal) -> None:
    error = refusal_error(reason)
    assert error.code == f"promo_code_{reason.name.lower()}"
    assert status_of(error) in (409, 422)
