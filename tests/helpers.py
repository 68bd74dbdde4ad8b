"""Tiny builders that keep scenarios readable."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from creditledger.domain.accounts import TokenKind
from creditledger.services.context import Context
from creditledger.services.tokens import create_platform_token

_counter = itertools.count(1)
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    email: str
    token: str
    team_id: str
    user_id: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_up(client: TestClient, name: str = "ada") -> Account:
    email = f"{name}{next(_counter)}@example.com"
    response = client.post(
        "/v1/signup", json={"email": email, "password": PASSWORD, "team_name": f"{name}'s team"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(email, body["token"], body["team"]["id"], body["user"]["id"])


def operator_token(ctx: Context) -> str:
    return create_platform_token(ctx, TokenKind.OPERATOR, "test operator")


def service_token(ctx: Context) -> str:
    return create_platform_token(ctx, TokenKind.SERVICE, "test gateway")


def at(text: str) -> datetime:
    """``at("2026-12-01")`` or ``at("2026-12-01T10:00")``, in UTC."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def error_code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code
