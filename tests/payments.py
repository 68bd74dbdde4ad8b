"""Builders for payment scenarios: buy through the sandbox, deliver its webhooks, draw
credit down, release threads together."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx2 as httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.db import tables as t
from creditledger.adapters.payments.delivery import ManualOutbox
from creditledger.adapters.payments.sandbox import DECLINE_CARD, SUCCESS_CARD, SandboxProvider
from creditledger.domain import ledger
from creditledger.domain.consumption import Allocation
from creditledger.domain.grants import GrantStatus, UsageScope
from creditledger.services.context import Context
from tests.helpers import Account, record_usage

T = TypeVar("T")

ROUNDS = int(os.environ.get("CREDITLEDGER_RACE_ROUNDS", "20"))
"""How many times each race runs per test (docs/quality.md asks for 20: set it so)."""

__all__ = ["DECLINE_CARD", "SUCCESS_CARD"]


def outbox(sandbox: SandboxProvider) -> ManualOutbox:
    assert isinstance(sandbox.outbox, ManualOutbox)
    return sandbox.outbox


def deliver(client: TestClient, sandbox: SandboxProvider) -> list[httpx.Response]:
    """Post every waiting sandbox webhook to the app, signed now."""
    return [
        client.post("/v1/webhooks/sandbox", content=body, headers=headers)
        for body, headers in outbox(sandbox).take()
    ]


def start_purchase(
    client: TestClient, account: Account, amount: str, key: str | None = None
) -> httpx.Response:
    return client.post(
        f"/v1/teams/{account.team_id}/purchases",
        json={"amount": amount},
        headers=account.auth | {"Idempotency-Key": key or str(uuid.uuid4())},
    )


def pay(client: TestClient, checkout_url: str, card: str = SUCCESS_CARD) -> httpx.Response:
    path = checkout_url.removeprefix("http://testserver")
    return client.post(
        path,
        content=f"card_number={card[:4]}+{card[4:8]}+{card[8:12]}+{card[12:]}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def buy(
    client: TestClient,
    sandbox: SandboxProvider,
    account: Account,
    amount: str,
    card: str = SUCCESS_CARD,
) -> dict[str, Any]:
    """Purchase, pay on the sandbox page, deliver the webhook; the purchase as GET shows it."""
    started = start_purchase(client, account, amount)
    assert started.status_code == 201, started.text
    pay(client, started.json()["checkout_url"], card)
    assert all(r.status_code == 200 for r in deliver(client, sandbox))
    shown = client.get(
        f"/v1/teams/{account.team_id}/purchases/{started.json()['id']}", headers=account.auth
    )
    body: dict[str, Any] = shown.json()
    return body


def balance(client: TestClient, account: Account) -> dict[str, Any]:
    body: dict[str, Any] = client.get(
        f"/v1/teams/{account.team_id}/balance", headers=account.auth
    ).json()
    return body


def paid_intent(
    purchase_id: str,
    team_id: str,
    cents: object,
    *,
    intent_id: str | None = None,
    currency: str = "usd",
) -> dict[str, Any]:
    """A succeeded PaymentIntent, as a provider would report one for ``purchase_id``,
    with ``amount_received`` = ``cents`` (anything, to forge or mismatch)."""
    return {
        "id": intent_id or f"pi_sb_forged_{uuid.uuid4().hex[:12]}",
        "object": "payment_intent",
        "amount": cents,
        "amount_received": cents,
        "currency": currency,
        "customer": "cus_sb_forged",
        "payment_method": "pm_sb_4242_forged",
        "metadata": {"creditledger_purchase_id": purchase_id, "creditledger_team_id": team_id},
        "status": "succeeded",
        "last_payment_error": None,
    }


def rows(ctx: Context, table: sa.Table) -> list[dict[str, Any]]:
    """Every row of ``table``, as dicts."""
    with ctx.uow(write=False) as uow:
        conn = uow.conn  # type: ignore[attr-defined]
        return [dict(row._mapping) for row in conn.execute(sa.select(table))]


def reviews(ctx: Context) -> list[dict[str, Any]]:
    """The refused payments kept for review, oldest first."""
    return sorted(rows(ctx, t.payment_reviews), key=lambda row: row["created_at"])


def draw_down(ctx: Context, team_id: str, amount: int) -> None:
    """Spend ``amount`` of the team's credit, in consumption order, as usage would."""
    with ctx.uow() as uow:
        uow.teams.lock(team_id)
        now = ctx.clock.now()
        draws: list[tuple[str, int]] = []
        left = amount
        for grant in uow.grants.for_team(team_id):
            if left and grant.status_at(now) is GrantStatus.ACTIVE:
                take = min(left, grant.remaining)
                draws.append((grant.id, take))
                left -= take
        tx = ledger.charge_usage(team_id, tuple(draws), left, now, "test usage", None)
        tx_id = uow.new_id("txn")
        uow.ledger.post(tx, tx_id, now)
        record_usage(
            uow, team_id, tx_id, UsageScope("serverless"), Allocation(tuple(draws), left), now
        )
        uow.commit()


def together(count: int, action: Callable[[int], T]) -> tuple[list[T], list[BaseException]]:
    """Run ``action(i)`` on ``count`` threads released at once by a barrier."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            value = action(i)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors
