"""Tiny builders that keep scenarios readable."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.db import tables
from creditledger.adapters.db.invariants import consumption_order, usage_charged_once
from creditledger.domain import ledger
from creditledger.domain.accounts import BillingMode, TokenKind
from creditledger.domain.consumption import Allocation, allocate
from creditledger.domain.grants import Grant, GrantKind, GrantSource, UsageScope
from creditledger.domain.money import dollars
from creditledger.domain.payments import Payment, PaymentPurpose, PaymentStatus
from creditledger.domain.purchases import Purchase
from creditledger.domain.usage import UsageRecord
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
        tx_id = uow.new_id("txn")
        uow.ledger.post(tx, tx_id, now)
        record_usage(uow, team_id, tx_id, usage, split, now)
        uow.commit()
    return split


def record_usage(
    uow: UnitOfWork,
    team_id: str,
    tx_id: str,
    usage: UsageScope,
    split: Allocation,
    now: datetime,
) -> None:
    """The usage event a hand-made usage transaction charges (invariant I4: no usage
    transaction without its event, charged as its postings say)."""
    charge = sum(n for _, n in split.draws) + split.uncovered
    record = UsageRecord(
        team_id=team_id,
        event_id=f"usage-{next(_counter)}",
        fingerprint="test",
        product=usage.product,
        model=usage.model or "",
        gpu=usage.gpu,
        occurred_at=now,
        charge=charge,
        uncovered=split.uncovered,
        transaction_id=tx_id,
        received_at=now,
        draws=split.draws,
    )
    uow.usage.add([record])


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
        id=uow.new_id("pur"),
        team_id=team_id,
        amount=new.amount,
        status=PaymentStatus.PENDING,
        created_at=now,
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


# --- Usage metering -----------------------------------------------------------------


def price(
    model: str | None,
    meter: str,
    unit_price: str,
    per_units: int = 1,
    *,
    product: str = "serverless",
    gpu: str | None = None,
) -> dict[str, Any]:
    """One row of the price book as PUT /v1/prices takes it."""
    return {
        "product": product,
        "model": model,
        "gpu": gpu,
        "meter": meter,
        "unit_price": unit_price,
        "per_units": per_units,
    }


def event(
    team_id: str,
    event_id: str,
    when: datetime,
    *,
    model: str = "llama",
    product: str = "serverless",
    gpu: str | None = None,
    **quantities: int,
) -> dict[str, Any]:
    """A usage event as the platform sends it; quantities by meter name."""
    raw: dict[str, Any] = {
        "id": event_id,
        "team_id": team_id,
        "product": product,
        "model": model,
        "timestamp": when.isoformat().replace("+00:00", "Z"),
        "quantities": quantities,
    }
    if gpu is not None:
        raw["gpu"] = gpu
    return raw


def nanos(text: str) -> int:
    """``nanos("0.0000074") == 7_400``."""
    return dollars(text)


@dataclass
class Platform:
    """The operator and the gateway of one test, talking to the API over ``client``."""

    client: TestClient
    ctx: Context
    operator: str
    service: str

    @classmethod
    def on(cls, client: TestClient, ctx: Context) -> Platform:
        return cls(client, ctx, operator_token(ctx), service_token(ctx))

    def put_prices(self, *rows: dict[str, Any]) -> None:
        response = self.client.put("/v1/prices", json=list(rows), headers=bearer(self.operator))
        assert response.status_code == 200, response.text

    def team(self, owner: Account | None = None) -> Account:
        """A new team without any credit (no sign-up grant), with an admin."""
        owner = owner or sign_up(self.client, "owner")
        response = self.client.post(
            "/v1/teams", json={"name": f"team {next(_counter)}"}, headers=owner.auth
        )
        assert response.status_code == 201, response.text
        return Account(owner.email, owner.token, response.json()["id"], owner.user_id)

    def promo(
        self,
        team_id: str,
        amount: str,
        *,
        scope: dict[str, list[str]] | None = None,
        effective_at: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        """An operator's promotional grant; returns its id."""
        body: dict[str, Any] = {"amount": amount, "note": "test credit"}
        if scope is not None:
            body["scope"] = scope
        if effective_at is not None:
            body["effective_at"] = effective_at.isoformat()
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        response = self.client.post(
            f"/v1/teams/{team_id}/grants",
            json=body,
            headers=bearer(self.operator) | {"Idempotency-Key": f"grant-{next(_counter)}"},
        )
        assert response.status_code == 201, response.text
        grant_id: str = response.json()["id"]
        return grant_id

    def prepaid(self, team_id: str, amount: str) -> str:
        """Prepaid credit as a purchase would give it; returns the grant id."""
        return prepaid_grant(self.ctx, team_id, amount)

    def usage(self, *events: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(
            "/v1/usage-events", json={"events": list(events)}, headers=bearer(self.service)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def remaining(self, team_id: str) -> dict[str, int]:
        return remaining_by_grant(self.ctx, team_id)

    def unpaid(self, team_id: str) -> int:
        return unpaid_of(self.ctx, team_id)


def prepaid_grant(ctx: Context, team_id: str, amount: str) -> str:
    """Prepaid credit from a settled purchase (see ``issue_prepaid``); returns the grant id."""
    new = NewGrant(kind=GrantKind.PREPAID, source=GrantSource.PURCHASE, amount=dollars(amount))
    with ctx.uow() as uow:
        uow.teams.lock(team_id)
        grant = issue_prepaid(uow, ctx, team_id, new)
        uow.commit()
    return grant.id


def remaining_by_grant(ctx: Context, team_id: str) -> dict[str, int]:
    with ctx.uow(write=False) as uow:
        return {g.id: g.remaining for g in uow.grants.for_team(team_id)}


def unpaid_of(ctx: Context, team_id: str) -> int:
    with ctx.uow(write=False) as uow:
        team = uow.teams.get(team_id)
    assert team is not None
    return team.unpaid


def set_billing(
    ctx: Context, team_id: str, mode: BillingMode, tier_override: int | None = None
) -> None:
    with ctx.uow() as uow:
        uow.teams.lock(team_id)
        uow.teams.set_billing(team_id, mode, tier_override)
        uow.commit()


# --- I4 and I7 of docs/quality.md, rebuilt from the rows ------------------------------------


@dataclass(frozen=True)
class Charged:
    """One stored usage event and the grant draws of its ledger transaction."""

    team_id: str
    event_id: str
    charge: int
    uncovered: int
    draws: dict[str, int]


def charged_events(database_url: str) -> list[Charged]:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    e, p = tables.usage_events, tables.postings
    with engine.connect() as conn:
        events = conn.execute(
            sa.select(
                e.c.team_id, e.c.event_id, e.c.charge_nanos, e.c.uncovered_nanos, e.c.transaction_id
            )
        ).all()
        draws: dict[str, dict[str, int]] = {}
        for tx_id, grant_id, amount in conn.execute(
            sa.select(p.c.transaction_id, p.c.grant_id, p.c.amount_nanos).where(
                p.c.grant_id.is_not(None),
                p.c.transaction_id.in_(
                    sa.select(e.c.transaction_id).where(e.c.transaction_id.is_not(None))
                ),
            )
        ):
            draws.setdefault(tx_id, {})[grant_id] = -amount
    engine.dispose()
    return [
        Charged(
            r.team_id,
            r.event_id,
            r.charge_nanos,
            r.uncovered_nanos,
            draws.get(r.transaction_id or "", {}),
        )
        for r in events
    ]


def usage_violations(database_url: str, window: timedelta = timedelta(hours=1)) -> list[str]:
    """I4 (each event charged once; Σ charges = Σ drawn + Σ unpaid) and I7 (no grant drawn
    while an earlier-ordered eligible grant still had credit), replayed from the ledger by
    the same checks as ``creditledger verify``.

    ``window`` is the late-arrival window: a grant stops being eligible for usage that
    arrives once its expiry is that far past, whatever the usage's own time.
    """
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return [*usage_charged_once(conn), *consumption_order(conn, window)]
    finally:
        engine.dispose()


def at_once(jobs: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run each job in its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results
