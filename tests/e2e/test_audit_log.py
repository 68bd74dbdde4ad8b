"""The operator audit log (docs/api.md, Operators): every operator action and every
operator read of a team's billing is recorded, and operators read it back, newest first."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from creditledger.adapters.clock import FixedClock
from creditledger.domain.accounts import TokenKind
from creditledger.entrypoints.cli import app as cli_app
from creditledger.services.context import Context
from creditledger.services.tokens import create_platform_token
from tests.e2e.test_role_matrix import CALLERS, EXPECTED
from tests.helpers import (
    Account,
    Platform,
    bearer,
    error_code,
    event,
    operator_grant,
    operator_token,
    price,
    service_token,
    sign_up,
)


def events(client: TestClient, operator: str, **params: Any) -> list[dict[str, Any]]:
    """Every matching event, newest first, following the cursor to the end."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        response = client.get("/v1/audit-events", params=query, headers=bearer(operator))
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def recorded_by(client: TestClient, operator: str, team_id: str | None = None) -> list[str]:
    """The actions recorded so far (oldest first), apart from reading the log itself."""
    params = {"team_id": team_id} if team_id else {}
    return [
        e["action"]
        for e in reversed(events(client, operator, **params))
        if e["action"] != "audit_events.read"
    ]


def purchase_of(client: TestClient, admin: Account) -> str:
    response = client.post(
        f"/v1/teams/{admin.team_id}/purchases",
        json={"amount": "10.00"},
        headers=admin.auth | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    purchase_id: str = response.json()["id"]
    return purchase_id


# Every read of a team's billing an operator may make, and the action it is logged as.
BILLING_READS = {
    "GET /v1/teams/{team}/balance": "balance.read",
    "GET /v1/teams/{team}/credits": "credits.read",
    "GET /v1/teams/{team}/credit-history": "credit_history.read",
    "GET /v1/teams/{team}/credit-history.csv": "credit_history.export",
    "GET /v1/teams/{team}/purchases/{purchase}": "purchase.read",
    "GET /v1/teams/{team}/usage": "usage.read",
    "GET /v1/teams/{team}/auto-recharge": "auto_recharge.read",
    "GET /v1/teams/{team}/invoices": "invoices.read",
    "GET /v1/teams/{team}/invoices/{invoice}": "invoices.read",
    "GET /v1/teams/{team}/invoices/{invoice}.pdf": "invoices.read",
    "GET /v1/teams/{team}/notification-webhook": "notification_webhook.read",
    "GET /v1/teams/{team}/notifications": "notifications.read",
}


def draft_invoice_of(client: TestClient, ctx: Context, admin: Account) -> str:
    """The admin's team uses more than its sign-up credit: its month's draft invoice."""
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "input_tokens", "1.00", 1_000_000))
    platform.usage(event(admin.team_id, "over", ctx.clock.now(), input_tokens=5_000_000))
    invoices = client.get(f"/v1/teams/{admin.team_id}/invoices", headers=admin.auth).json()
    invoice_id: str = invoices["data"][0]["id"]
    return invoice_id


def test_every_billing_read_an_operator_may_make_is_in_the_list() -> None:
    """The role matrix's reads under a team that both its admins and operators may make
    are the team's Billing: each of them is checked below."""
    operator, admin = CALLERS.index("operator"), CALLERS.index("admin")
    matrix_reads = {
        endpoint
        for endpoint, statuses in EXPECTED.items()
        if endpoint.startswith("GET /v1/teams/{team}/")
        and statuses[operator] == statuses[admin] == 200
    }
    assert matrix_reads
    assert matrix_reads <= set(BILLING_READS)


def test_every_operator_read_of_a_team_billing_is_audited(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    purchase = purchase_of(client, ada)
    invoice = draft_invoice_of(client, ctx, ada)
    hook = {"url": "https://example.com/notices"}
    webhook = client.put(
        f"/v1/teams/{ada.team_id}/notification-webhook", json=hook, headers=ada.auth
    )
    assert webhook.status_code == 200
    operator = operator_token(ctx)
    for endpoint in BILLING_READS:
        path = endpoint.split(" ")[1].format(team=ada.team_id, purchase=purchase, invoice=invoice)
        assert client.get(path, headers=ada.auth).status_code == 200  # the admin's own: not logged
    assert recorded_by(client, operator, ada.team_id) == []
    for endpoint, action in BILLING_READS.items():
        path = endpoint.split(" ")[1].format(team=ada.team_id, purchase=purchase, invoice=invoice)
        assert client.get(path, headers=bearer(operator)).status_code == 200, endpoint
        (latest, *_) = [e for e in events(client, operator) if e["action"] != "audit_events.read"]
        assert latest["action"] == action, endpoint
        assert latest["team_id"] == ada.team_id
        assert latest["actor_name"] == "test operator"
        assert latest["actor"].startswith("tok_")
        assert latest["client"] == "testclient"
    assert recorded_by(client, operator, ada.team_id) == list(BILLING_READS.values())


def test_a_refused_read_is_not_an_audit_event(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    operator = operator_token(ctx)
    base = f"/v1/teams/{ada.team_id}"
    assert (
        client.get(
            f"{base}/purchases/pur_00000000000000000000000000", headers=bearer(operator)
        ).status_code
        == 404
    )
    assert (
        client.get(
            "/v1/teams/team_00000000000000000000000000/balance", headers=bearer(operator)
        ).status_code
        == 404
    )
    assert (
        client.get(
            f"{base}/credit-history", params={"cursor": "forged"}, headers=bearer(operator)
        ).status_code
        == 400
    )
    assert recorded_by(client, operator) == ["token.create"]


def test_every_operator_action_is_audited_with_what_it_did(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    operator = operator_token(ctx)
    op = bearer(operator)
    grant = operator_grant(client, operator, ada.team_id, "5.00", note="Sorry for the outage")
    assert grant.status_code == 201
    grant_id = grant.json()["id"]
    assert (
        client.post(f"/v1/teams/{ada.team_id}/grants/{grant_id}/void", headers=op).status_code
        == 200
    )
    promo = client.post(
        "/v1/promo-codes",
        json={"code": "AUDITED", "amount": "2.00", "max_redemptions": 3},
        headers=op,
    )
    promo_id = promo.json()["codes"][0]["id"]
    for disabled in (True, False):
        response = client.patch(
            f"/v1/promo-codes/{promo_id}", json={"disabled": disabled}, headers=op
        )
        assert response.status_code == 200
    settings = client.put(
        f"/v1/teams/{ada.team_id}/billing-settings",
        json={"billing_mode": "pay_as_you_go", "tier_level": 2},
        headers=op,
    )
    assert settings.status_code == 200, settings.text
    assert (
        client.put(
            "/v1/prices", json=[price("llama", "tokens", "0.000001")], headers=op
        ).status_code
        == 200
    )
    pricing = client.put(
        f"/v1/teams/{ada.team_id}/pricing", json={"discount_percent": "12.5"}, headers=op
    )
    assert pricing.status_code == 200, pricing.text

    logged = list(reversed(events(client, operator)))
    assert [e["action"] for e in logged] == [
        "token.create",
        "grant.create",
        "grant.void",
        "promo_codes.create",
        "promo_code.disable",
        "promo_code.enable",
        "billing_settings.set",
        "price_book.set",
        "team_pricing.set",
    ]
    by_action = {e["action"]: e for e in logged}
    assert by_action["grant.create"]["detail"] == {
        "grant_id": grant_id,
        "amount": "5.00",
        "note": "Sorry for the outage",
    }
    assert by_action["grant.void"]["detail"] == {"grant_id": grant_id, "written_off": "5.00"}
    created = by_action["promo_codes.create"]["detail"]
    assert created["promo_code_ids"] == [promo_id] and "AUDITED" not in str(created)
    assert by_action["promo_code.disable"]["detail"] == {"promo_code_id": promo_id}
    assert by_action["billing_settings.set"]["detail"] == {
        "billing_mode": "pay_as_you_go",
        "tier_level_override": 2,
        "was_billing_mode": "prepaid",
        "was_tier_level_override": None,
    }
    assert by_action["team_pricing.set"]["detail"]["discount_percent"] == "12.50"
    assert by_action["price_book.set"]["team_id"] is None
    token = by_action["token.create"]
    assert (token["actor"], token["client"], token["detail"]["name"]) == (
        "system:cli",
        "cli",
        "test operator",
    )
    assert all(e["client"] == "testclient" for e in logged[1:])
    on_the_team = {"grant.create", "grant.void", "billing_settings.set", "team_pricing.set"}
    assert all((e["team_id"] == ada.team_id) == (e["action"] in on_the_team) for e in logged)
    assert all(e["team_id"] is None for e in logged if e["action"] not in on_the_team)


def test_a_refused_operator_action_leaves_no_audit_event(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    operator = operator_token(ctx)
    op = bearer(operator)
    grant_id = operator_grant(client, operator, ada.team_id).json()["id"]
    void = f"/v1/teams/{ada.team_id}/grants/{grant_id}/void"
    assert client.post(void, headers=op).status_code == 200
    assert client.post(void, headers=op).status_code == 409
    assert operator_grant(client, operator, ada.team_id, note="").status_code == 422
    taken = client.post(
        "/v1/promo-codes",
        json={"code": "TWICE", "amount": "1.00", "max_redemptions": 1},
        headers=op,
    )
    assert taken.status_code == 201
    again = client.post(
        "/v1/promo-codes",
        json={"code": "TWICE", "amount": "1.00", "max_redemptions": 1},
        headers=op,
    )
    assert again.status_code == 409
    assert recorded_by(client, operator) == [
        "token.create",
        "grant.create",
        "grant.void",
        "promo_codes.create",
    ]


def test_a_replayed_idempotent_grant_is_one_audit_event(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    operator = operator_token(ctx)
    first = operator_grant(client, operator, ada.team_id, key="only-once")
    again = operator_grant(client, operator, ada.team_id, key="only-once")
    assert first.json() == again.json()
    assert recorded_by(client, operator, ada.team_id) == ["grant.create"]


# --- reading the log ----------------------------------------------------------------------


def test_the_audit_log_is_for_operators_only(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    for headers, status in (
        ({}, 401),
        (ada.auth, 403),
        (bearer(service_token(ctx)), 403),
        (bearer(operator_token(ctx)), 200),
    ):
        assert client.get("/v1/audit-events", headers=headers).status_code == status


def test_reading_the_audit_log_is_itself_audited(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    operator = operator_token(ctx)
    client.get("/v1/audit-events", params={"team_id": ada.team_id}, headers=bearer(operator))
    (read,) = events(client, operator, team_id=ada.team_id)
    assert read["action"] == "audit_events.read"
    assert read["team_id"] == ada.team_id
    assert read["detail"] == {
        "team_id": ada.team_id,
        "actor": None,
        "since": None,
        "next_page": False,
    }


def test_audit_events_come_newest_first_in_pages_with_an_opaque_cursor(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    ada = sign_up(client)
    operator = operator_token(ctx)
    op = bearer(operator)
    for _ in range(7):
        clock.advance(timedelta(seconds=1))
        assert client.get(f"/v1/teams/{ada.team_id}/balance", headers=op).status_code == 200
    query: dict[str, str | int] = {"team_id": ada.team_id, "limit": 3}
    first = client.get("/v1/audit-events", params=query, headers=op).json()
    assert len(first["data"]) == 3 and first["next_cursor"]
    assert ada.team_id not in first["next_cursor"] and not first["next_cursor"].isdigit()
    pages = [first["data"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get("/v1/audit-events", params=query | {"cursor": cursor}, headers=op).json()
        pages.append(page["data"])
        cursor = page["next_cursor"]
    listed = [e for p in pages for e in p]
    balance_reads = [e for e in listed if e["action"] == "balance.read"]
    assert len(balance_reads) == 7
    assert [e["at"] for e in balance_reads] == sorted(
        (e["at"] for e in balance_reads), reverse=True
    )
    assert len({e["id"] for e in listed}) == len(listed)
    assert set(listed[0]) == {
        "id",
        "at",
        "actor",
        "actor_name",
        "action",
        "team_id",
        "detail",
        "client",
    }


def test_only_cursors_this_list_gave_out_are_taken(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    operator = operator_token(ctx)
    op = bearer(operator)
    for _ in range(3):
        client.get(f"/v1/teams/{ada.team_id}/balance", headers=op)
        operator_grant(client, operator, ada.team_id)
    query: dict[str, str | int] = {"team_id": ada.team_id, "limit": 1}
    cursor = client.get("/v1/audit-events", params=query, headers=op).json()["next_cursor"]
    history = client.get(
        f"/v1/teams/{ada.team_id}/credit-history", params={"limit": 1}, headers=op
    ).json()["next_cursor"]
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    cases: list[tuple[str, dict[str, str | int]]] = [
        ("forged", query),
        (tampered, query),
        (history, query),  # the credit history's: not this list's
        (cursor, {"limit": 1}),  # made for the list of one team's events
        (cursor, {"team_id": ada.team_id, "actor": "tok_x", "limit": 1}),
    ]
    for forged, params in cases:
        response = client.get("/v1/audit-events", params=params | {"cursor": forged}, headers=op)
        assert (response.status_code, error_code(response)) == (400, "invalid_cursor"), forged
    again = client.get("/v1/audit-events", params=query | {"cursor": cursor}, headers=op)
    assert again.status_code == 200


def test_audit_events_filter_by_team_actor_and_time(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    ada, bea = sign_up(client, "ada"), sign_up(client, "bea")
    alice = operator_token(ctx)
    bob = create_platform_token(ctx, TokenKind.OPERATOR, "bob")
    client.get(f"/v1/teams/{ada.team_id}/balance", headers=bearer(alice))
    clock.advance(timedelta(hours=1))
    since = clock.now()
    client.get(f"/v1/teams/{ada.team_id}/credits", headers=bearer(bob))
    client.get(f"/v1/teams/{bea.team_id}/credits", headers=bearer(alice))

    def actions(**params: Any) -> list[tuple[str | None, str | None, str]]:
        return [
            (e["actor_name"], e["team_id"], e["action"])
            for e in events(client, alice, **params)
            if e["action"] != "audit_events.read"
        ]

    assert actions(team_id=ada.team_id) == [
        ("bob", ada.team_id, "credits.read"),
        ("test operator", ada.team_id, "balance.read"),
    ]
    bob_id = next(e["actor"] for e in events(client, alice) if e["actor_name"] == "bob")
    assert actions(actor=bob_id) == [("bob", ada.team_id, "credits.read")]
    assert actions(since=since.isoformat()) == [
        ("test operator", bea.team_id, "credits.read"),
        ("bob", ada.team_id, "credits.read"),
    ]
    assert actions(team_id="team_00000000000000000000000000") == []
    bad = client.get("/v1/audit-events", params={"since": "yesterday"}, headers=bearer(alice))
    assert bad.status_code == 422


# --- the command line ----------------------------------------------------------------------


def test_operator_actions_from_the_command_line_are_audited_as_cli(
    client: TestClient, ctx: Context, database_url: str
) -> None:
    env = {"CREDITLEDGER_DATABASE_URL": database_url}
    made = CliRunner().invoke(
        cli_app, ["promo", "create", "--amount", "1.00", "--code", "FROMCLI"], env=env
    )
    assert made.exit_code == 0, made.output
    operator = operator_token(ctx)
    promo_id = next(
        e["detail"]["promo_code_ids"][0]
        for e in events(client, operator)
        if e["action"] == "promo_codes.create"
    )
    disabled = CliRunner().invoke(cli_app, ["promo", "disable", promo_id], env=env)
    assert disabled.exit_code == 0, disabled.output
    logged = [e for e in reversed(events(client, operator)) if e["action"] != "audit_events.read"]
    assert [(e["action"], e["actor"], e["client"]) for e in logged] == [
        ("promo_codes.create", "system:cli", "cli"),
        ("token.create", "system:cli", "cli"),
        ("promo_code.disable", "system:cli", "cli"),
    ]
