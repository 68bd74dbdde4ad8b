"""Who may do what: every endpoint × every kind of caller, with the exact status.

Policy (docs/decisions/0001, services/access.py): anonymous → 401; a user who is not
a member of the team → 404, exactly as for a missing team; a member on Billing or
member management → 403; operators may read Billing and GET the team, and only they
may grant and void and create, show or disable promo codes; only team admins redeem
them; service tokens → 403 on team endpoints. `GET /v1/me` is for users (any personal
token), the member list for team admins, the audit log for operators. Every response is
also scanned for ids of the team the caller does not belong to.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.services.access import TEAM_NOT_FOUND
from creditledger.services.context import Context
from creditledger.services.invoices import run_invoices
from tests.conftest import START
from tests.helpers import (
    PASSWORD,
    Account,
    bearer,
    event,
    operator_grant,
    operator_token,
    price,
    service_token,
    sign_up,
)

CALLERS = ("anonymous", "member", "admin", "other_admin", "removed", "operator", "service")

# endpoint: anonymous, member, admin, admin of another team, removed member, operator, service
EXPECTED: dict[str, tuple[int, ...]] = {
    "POST /v1/signup": (201, 201, 201, 201, 201, 201, 201),
    "POST /v1/login": (200, 200, 200, 200, 200, 200, 200),
    "POST /v1/teams": (401, 201, 201, 201, 201, 403, 403),
    "GET /v1/teams/{team}": (401, 200, 200, 404, 404, 200, 403),
    "GET /v1/me": (401, 200, 200, 200, 200, 403, 403),
    "GET /v1/teams/{team}/members": (401, 403, 200, 404, 404, 403, 403),
    "POST /v1/teams/{team}/members": (401, 403, 201, 404, 404, 403, 403),
    "PATCH /v1/teams/{team}/members/{user}": (401, 403, 200, 404, 404, 403, 403),
    "DELETE /v1/teams/{team}/members/{user}": (401, 403, 204, 404, 404, 403, 403),
    "GET /v1/teams/{team}/balance": (401, 403, 200, 404, 404, 200, 403),
    "GET /v1/teams/{team}/credits": (401, 403, 200, 404, 404, 200, 403),
    "GET /v1/teams/{team}/credit-history": (401, 403, 200, 404, 404, 200, 403),
    "GET /v1/teams/{team}/credit-history.csv": (401, 403, 200, 404, 404, 200, 403),
    "GET /v1/teams/{team}/invoices": (401, 403, 200, 404, 404, 200, 403),
    "GET /v1/teams/{team}/invoices/{invoice}": (401, 403, 200, 404, 404, 200, 403),
    "GET /v1/teams/{team}/invoices/{invoice}.pdf": (401, 403, 200, 404, 404, 200, 403),
    "POST /v1/teams/{team}/invoices/{invoice}/pay": (401, 403, 200, 404, 404, 403, 403),
    "POST /v1/teams/{team}/invoices/{invoice}/void": (401, 403, 403, 403, 403, 200, 403),
    "POST /v1/teams/{team}/grants": (401, 403, 403, 403, 403, 201, 403),
    "POST /v1/teams/{team}/grants/{grant}/void": (401, 403, 403, 403, 403, 200, 403),
    "POST /v1/teams/{team}/promo-codes/redeem": (401, 403, 201, 404, 404, 403, 403),
    # The webhook is set by the first row and removed by the last.
    "PUT /v1/teams/{team}/notification-webhook": (401, 403, 200, 404, 404, 403, 403),
    "GET /v1/teams/{team}/notification-webhook": (401, 403, 200, 404, 404, 200, 403),
    "POST /v1/teams/{team}/notification-webhook/rotate-secret": (401, 403, 200, 404, 404, 403, 403),
    "POST /v1/teams/{team}/notification-webhook/test": (401, 403, 200, 404, 404, 403, 403),
    "GET /v1/teams/{team}/notifications": (401, 403, 200, 404, 404, 200, 403),
    "DELETE /v1/teams/{team}/notification-webhook": (401, 403, 204, 404, 404, 403, 403),
    "POST /v1/promo-codes": (401, 403, 403, 403, 403, 201, 403),
    "GET /v1/promo-codes/{promo}": (401, 403, 403, 403, 403, 200, 403),
    "PATCH /v1/promo-codes/{promo}": (401, 403, 403, 403, 403, 200, 403),
    "GET /v1/audit-events": (401, 403, 403, 403, 403, 200, 403),
    "GET /healthz": (200, 200, 200, 200, 200, 200, 200),
    "GET /readyz": (200, 200, 200, 200, 200, 200, 200),
    "GET /metrics": (200, 200, 200, 200, 200, 200, 200),
    "GET /openapi.json": (200, 200, 200, 200, 200, 200, 200),
}

_fresh = itertools.count(1)


@dataclass
class World:
    """Team A (admin, member, a removed member) and team B (its admin), plus platform tokens."""

    client: TestClient
    ctx: Context
    admin: Account
    member: Account
    removed: Account
    other_admin: Account
    operator: str
    service: str
    invoice: str = ""
    """An open invoice of team A."""
    a_ids: set[str] = field(default_factory=set)
    b_ids: set[str] = field(default_factory=set)

    def headers(self, caller: str) -> dict[str, str]:
        token = {
            "anonymous": None,
            "member": self.member.token,
            "admin": self.admin.token,
            "other_admin": self.other_admin.token,
            "removed": self.removed.token,
            "operator": self.operator,
            "service": self.service,
        }[caller]
        return bearer(token) if token else {}

    def join(self, role: str = "member") -> Account:
        """A new user, added to team A."""
        newcomer = sign_up(self.client, "newcomer")
        response = self.client.post(
            f"/v1/teams/{self.admin.team_id}/members",
            headers=self.admin.auth,
            json={"email": newcomer.email, "role": role},
        )
        assert response.status_code == 201
        self.a_ids.add(newcomer.user_id)
        return newcomer

    def fresh_promo(self) -> dict[str, str]:
        """A new promo code (its id and text), made by the operator."""
        body = {"count": 1, "amount": "1.00", "max_redemptions": 5}
        response = self.client.post("/v1/promo-codes", json=body, headers=bearer(self.operator))
        assert response.status_code == 201, response.text
        code: dict[str, str] = response.json()["codes"][0]
        return code

    def fresh_grant(self) -> str:
        grant_id: str = operator_grant(self.client, self.operator, self.admin.team_id).json()["id"]
        self.a_ids.add(grant_id)
        return grant_id


def build_world(client: TestClient, ctx: Context) -> World:
    admin, member, removed = (sign_up(client, n) for n in ("admin", "member", "removed"))
    other_admin = sign_up(client, "other")
    world = World(
        client, ctx, admin, member, removed, other_admin, operator_token(ctx), service_token(ctx)
    )
    for who in (member, removed):
        response = client.post(
            f"/v1/teams/{admin.team_id}/members", headers=admin.auth, json={"email": who.email}
        )
        assert response.status_code == 201
    assert (
        client.delete(
            f"/v1/teams/{admin.team_id}/members/{removed.user_id}", headers=admin.auth
        ).status_code
        == 204
    )
    world.a_ids = {admin.team_id, admin.user_id, member.user_id}
    world.b_ids = {other_admin.team_id, other_admin.user_id}
    for account, ids in ((admin, world.a_ids), (other_admin, world.b_ids)):
        credits = client.get(f"/v1/teams/{account.team_id}/credits", headers=account.auth)
        ids.update(c["id"] for c in credits.json()["data"])
    world.invoice = open_invoice(world)
    world.a_ids.add(world.invoice)
    return world


def open_invoice(world: World) -> str:
    """Team A uses more than its credit in November; the month's invoice opens."""
    client, team = world.client, world.admin.team_id
    prices = [price("llama", "input_tokens", "1.00", 1_000_000)]
    assert client.put("/v1/prices", json=prices, headers=bearer(world.operator)).status_code == 200
    usage = {"events": [event(team, "matrix-usage", START, input_tokens=5_000_000)]}
    assert (
        client.post("/v1/usage-events", json=usage, headers=bearer(world.service)).status_code
        == 200
    )
    clock = world.ctx.clock
    assert isinstance(clock, FixedClock)
    clock.at = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
    assert run_invoices(world.ctx) == 1
    invoices = client.get(f"/v1/teams/{team}/invoices", headers=world.admin.auth).json()
    invoice_id: str = invoices["data"][0]["id"]
    return invoice_id


Request = tuple[str, str, dict[str, Any] | None, dict[str, str]]
"""method, path, JSON body, extra headers"""


def request_for(endpoint: str, world: World) -> Request:
    """A request that would succeed for a caller who has the right, made fresh each time."""
    method, template = endpoint.split(" ")
    team = world.admin.team_id
    body: dict[str, Any] | None = None
    extra: dict[str, str] = {}
    user = grant = promo = ""
    if endpoint == "POST /v1/signup":
        body = {
            "email": f"matrix{next(_fresh)}@example.com",
            "password": PASSWORD,
            "team_name": "M",
        }
    elif endpoint == "POST /v1/login":
        body = {"email": world.member.email, "password": PASSWORD}
    elif endpoint == "POST /v1/teams":
        body = {"name": "Another team"}
    elif endpoint == "POST /v1/teams/{team}/members":
        body = {"email": sign_up(world.client, "invitee").email}
    elif endpoint == "PATCH /v1/teams/{team}/members/{user}":
        user, body = world.join().user_id, {"role": "admin"}
    elif endpoint == "DELETE /v1/teams/{team}/members/{user}":
        user = world.join().user_id
    elif endpoint == "POST /v1/teams/{team}/grants":
        body = {"amount": "1.00", "note": "matrix"}
        extra = {"Idempotency-Key": f"matrix-{next(_fresh)}"}
    elif endpoint.endswith("/invoices/{invoice}/pay"):
        body, extra = {}, {"Idempotency-Key": f"matrix-{next(_fresh)}"}
    elif endpoint.endswith("/invoices/{invoice}/void"):
        body = {"note": "matrix"}
    elif endpoint.endswith("/void"):
        grant = world.fresh_grant()
    elif endpoint == "PUT /v1/teams/{team}/notification-webhook":
        body = {"url": "http://127.0.0.1:9/notices"}  # nothing listens: tries fail, quickly
    elif endpoint.endswith("/redeem"):
        body = {"code": world.fresh_promo()["code"]}
    elif endpoint == "POST /v1/promo-codes":
        body = {"code": f"MATRIX{next(_fresh)}", "amount": "1.00", "max_redemptions": 1}
    elif "{promo}" in endpoint:
        promo = world.fresh_promo()["id"]
        body = {"disabled": True} if method == "PATCH" else None
    path = template.format(team=team, user=user, grant=grant, promo=promo, invoice=world.invoice)
    if endpoint == "GET /v1/audit-events":
        path += f"?team_id={team}"
    return method, path, body, extra


def test_every_endpoint_answers_each_kind_of_caller_as_the_policy_says(
    client: TestClient, ctx: Context
) -> None:
    world = build_world(client, ctx)
    actual: dict[str, tuple[int, ...]] = {}
    leaks: list[str] = []
    not_found_bodies: list[Any] = []
    for endpoint in EXPECTED:
        statuses = []
        for caller in CALLERS:
            method, path, body, extra = request_for(endpoint, world)
            response = client.request(
                method, path, json=body, headers=world.headers(caller) | extra
            )
            statuses.append(response.status_code)
            if response.status_code == 404:
                not_found_bodies.append(response.json())
            if response.status_code in (200, 201) and ("grant" in endpoint or "redeem" in endpoint):
                world.a_ids.add(response.json()["id"])
            foreign = world.a_ids if caller == "other_admin" else world.b_ids
            leaked = sorted(i for i in foreign if i in response.text)
            if leaked:
                leaks.append(f"{endpoint} as {caller}: {leaked}")
        actual[endpoint] = tuple(statuses)

    assert actual == EXPECTED
    assert leaks == []
    missing_team = client.get("/v1/teams/team_00000000000000000000000000", headers=world.admin.auth)
    assert missing_team.status_code == 404
    assert all(b == missing_team.json() for b in not_found_bodies)
    assert missing_team.json() == {"error": {"code": "not_found", "message": TEAM_NOT_FOUND}}


def test_a_member_is_refused_billing_with_a_clear_forbidden_error(
    client: TestClient, ctx: Context
) -> None:
    world = build_world(client, ctx)
    response = client.get(
        f"/v1/teams/{world.admin.team_id}/balance", headers=world.headers("member")
    )
    assert response.json()["error"]["code"] == "forbidden"
    assert "admin" in response.json()["error"]["message"]


def test_a_bad_or_revoked_token_is_unauthenticated(client: TestClient, ctx: Context) -> None:
    world = build_world(client, ctx)
    for headers in (
        bearer("clp_not-a-real-token"),
        {"Authorization": "Basic abc"},
        bearer("x" * 300),
    ):
        response = client.get(f"/v1/teams/{world.admin.team_id}", headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthenticated")


def assert_same(call: Callable[[], Any], other: Callable[[], Any]) -> None:
    first, second = call(), other()
    assert (first.status_code, first.json()) == (second.status_code, second.json())


def test_another_teams_grant_answers_like_a_missing_one(client: TestClient, ctx: Context) -> None:
    world = build_world(client, ctx)
    b_grant = next(i for i in world.b_ids if i.startswith("grant_"))
    base = f"/v1/teams/{world.admin.team_id}/grants"
    op = world.headers("operator")
    assert_same(
        lambda: client.post(f"{base}/{b_grant}/void", headers=op),
        lambda: client.post(f"{base}/grant_00000000000000000000000000/void", headers=op),
    )
