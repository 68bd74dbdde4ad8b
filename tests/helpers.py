"""Tiny builders that keep scenarios readable."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from creditledger.domain import ledger
from creditledger.domain.accounts import TokenKind
from creditledger.domain.consumption import Allocation, allocate
from creditledger.domain.grants import Grant, GrantKind, UsageScope
from creditledger.domain.payments import Payment, PaymentPurpose, PaymentStatus
from creditledger.domain.purchases import Purchase
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.ports import UnitOfWork
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


def operator_grant(
    client: TestClient,
    operator: str,
    team_id: str,
    amount: str = "5.00",
    *,
    key: str | None = None,
    note: str = "Thanks",
    **fields: Any,
) -> Any:
    """POST an operator grant; returns the response. ``key`` defaults to a fresh one."""
    headers = bearer(operator) | {"Idempotency-Key": key or f"key-{next(_counter)}"}
    body = {"amount": amount, "note": note} | fields
    return client.post(f"/v1/teams/{team_id}/grants", headers=headers, json=body)


def spend(ctx: Context, team_id: str, nanos: int, usage: UsageScope | None = None) -> Allocation:
    """Charge usage against the team's grants now, as the usage pipeline will."""
    usage = usage or UsageScope("serverless", "llama-3.1-70b")
    with ctx.uow() as uow:
        uow.teams.lock(team_id)
        now = ctx.clock.now()
        split = allocate(uow.grants.for_team(team_id), nanos, usage, now)
        tx = ledger.charge_usage(team_id, split.draws, split.uncovered, now, "Usage", None)
        uow.ledger.post(tx, uow.new_id("txn"), now)
        uow.commit()
    return split


def snapshot(client: TestClient, account: Account) -> tuple[Any, ...]:
    """Everything a caller can see of a team's money: to show a refused call changed nothing."""
    base = f"/v1/teams/{account.team_id}"
    return tuple(
        client.get(f"{base}/{part}", headers=account.auth, params={"limit": 500}).json()
        for part in ("balance", "credits", "credit-history")
    )


def issue_prepaid(uow: UnitOfWork, ctx: Context, team_id: str, new: NewGrant) -> Grant:
    """A prepaid grant as a settled payment makes it, inside the caller's unit of work
    (prepaid credit without a payment would break invariant I6)."""
    now = ctx.clock.now()
    purchase = Purchase(
        uow.new_id("pur"),
        team_id,
        new.amount,
        PaymentStatus.PENDING,
        None,
        None,
        None,
        None,
        now,
    )
    uow.payments.add_purchase(purchase, ctx.payments.name)
    payment = Payment(
        id=uow.new_id("pay"),
        provider=ctx.payments.name,
        provider_payment_id=f"pi_test_{purchase.id}",
        team_id=team_id,
        purpose=PaymentPurpose.PURCHASE,
        purchase_id=purchase.id,
        recharge_id=None,
        amount=new.amount,
        refunded=0,
        refund_written_off=0,
        status=PaymentStatus.SUCCEEDED,
        grant_id=None,
    )
    uow.payments.add_payment(payment, now)
    grant = issue_grant(uow, ctx, team_id, new, "Purchase", payment.provider_payment_id)
    uow.payments.set_payment_grant(payment.id, grant.id)
    return grant


def grant_any(uow: UnitOfWork, ctx: Context, team_id: str, new: NewGrant) -> Grant:
    """``issue_grant`` for promotional credit, ``issue_prepaid`` for prepaid."""
    if new.kind is GrantKind.PREPAID:
        return issue_prepaid(uow, ctx, team_id, new)
    return issue_grant(uow, ctx, team_id, new, "Grant")
