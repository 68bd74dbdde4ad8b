"""The web pages over HTTP: sessions, CSRF, throttles, access and hostile input."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables
from creditledger.domain.accounts import BillingMode, Role
from creditledger.entrypoints.api.app import create_app
from creditledger.services.access import system_operator
from creditledger.services.accounts import add_member, change_role
from creditledger.services.context import Context
from creditledger.services.promo_codes import NewPromoCodes, create_promo_codes
from creditledger.services.sessions import purge_ended_sessions, revoke_sessions
from creditledger.services.tokens import authenticate
from tests.helpers import (
    PASSWORD,
    Account,
    Platform,
    bearer,
    event,
    price,
    set_billing,
    sign_up,
)
from tests.payments import balance, rows

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def web_sign_in(client: TestClient, account: Account, password: str = PASSWORD) -> None:
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"email": account.email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def billing(team_id: str) -> str:
    return f"/teams/{team_id}/settings/billing"


def page_token(client: TestClient, team_id: str) -> str:
    return csrf_of(client.get(billing(team_id)).text)


def admin_member_stranger(client: TestClient, ctx: Context) -> tuple[Account, Account, Account]:
    """Ada's team with Max as a member; Eve, in a team of her own, is a stranger to it."""
    ada = sign_up(client, "ada")
    max_ = sign_up(client, "max")
    eve = sign_up(client, "eve")
    add_member(ctx, authenticate(ctx, ada.token), ada.team_id, max_.email, Role.MEMBER)
    return ada, max_, eve


def browser(ctx: Context) -> TestClient:
    """Another browser (its own cookie jar) on the same server."""
    return TestClient(create_app(ctx), raise_server_exceptions=False)


def session_rows(ctx: Context) -> list[dict[str, Any]]:
    return rows(ctx, tables.web_sessions)


def test_sign_in_keeps_only_a_hash_and_sets_a_safe_cookie(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client, "ada")
    form = client.get("/login")
    assert form.status_code == 200
    visit = form.headers["set-cookie"]
    assert "HttpOnly" in visit and "SameSite=lax" in visit
    answer = client.post(
        "/login",
        data={"email": ada.email, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("creditledger_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; https sets it
    secret = cookie.split(";")[0].split("=", 1)[1]
    assert secret not in answer.headers["location"]
    (row,) = session_rows(ctx)
    assert row["session_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(row)
    home = client.get("/", follow_redirects=False)
    assert home.headers["location"] == billing(ada.team_id)


def test_pages_carry_the_security_headers(client: TestClient) -> None:
    for path in ("/login", "/signup"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"


def test_sign_in_and_sign_up_without_the_csrf_token_are_refused(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client, "ada")
    client.get("/login")
    for path, data in (
        ("/login", {"email": ada.email, "password": PASSWORD}),
        ("/login", {"email": ada.email, "password": PASSWORD, "csrf_token": "x" * 64}),
        ("/signup", {"email": "new@example.com", "password": PASSWORD, "team_name": "T"}),
    ):
        answer = client.post(path, data=data, follow_redirects=False)
        assert answer.status_code == 403, path
        assert "expired" in answer.text
    assert session_rows(ctx) == []
    # Another browser's token is no good with this browser's cookie either.
    other = browser(ctx)
    token = csrf_of(other.get("/login").text)
    answer = client.post(
        "/login",
        data={"email": ada.email, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 403


def test_sign_up_on_the_page_makes_the_account_and_signs_in(client: TestClient) -> None:
    token = csrf_of(client.get("/signup").text)
    bad = client.post(
        "/signup",
        data={"email": "not-an-email", "password": PASSWORD, "team_name": "T", "csrf_token": token},
    )
    assert bad.status_code == 422
    assert "email address" in bad.text
    made = client.post(
        "/signup",
        data={
            "email": "lin@example.com",
            "password": PASSWORD,
            "team_name": "Lin's team",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert made.status_code == 303
    page = client.get(made.headers["location"])
    assert page.status_code == 200
    assert "Lin&#39;s team" in page.text
    taken = client.post(
        "/signup",
        data={
            "email": "lin@example.com",
            "password": PASSWORD,
            "team_name": "Again",
            "csrf_token": token,
        },
    )
    assert taken.status_code == 409


def test_wrong_passwords_on_the_page_are_throttled_like_the_api(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client, "ada")
    token = csrf_of(client.get("/login").text)
    wrong = {"email": ada.email, "password": "wrong password!", "csrf_token": token}
    for _ in range(ctx.settings.login_failures_per_account):
        assert client.post("/login", data=wrong).status_code == 401
    refused = client.post("/login", data={**wrong, "password": PASSWORD}, follow_redirects=False)
    assert refused.status_code == 429
    assert "Too many" in refused.text or "try again" in refused.text.lower()
    assert session_rows(ctx) == []


def test_next_only_leads_to_a_path_of_this_site(client: TestClient) -> None:
    ada = sign_up(client, "ada")
    for target, expected in (
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        (billing(ada.team_id), billing(ada.team_id)),
    ):
        fresh = TestClient(client.app, raise_server_exceptions=False)
        token = csrf_of(fresh.get("/login").text)
        answer = fresh.post(
            "/login",
            data={"email": ada.email, "password": PASSWORD, "csrf_token": token, "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == expected, target


def test_a_session_ends_at_its_lifetime_at_sign_out_and_by_revoke(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    ada = sign_up(client, "ada")
    web_sign_in(client, ada)
    assert client.get(billing(ada.team_id)).status_code == 200
    clock.advance(timedelta(hours=ctx.settings.web_session_hours))
    expired = client.get(billing(ada.team_id), follow_redirects=False)
    assert expired.status_code == 303
    assert expired.headers["location"].startswith("/login?next=%2Fteams%2F")

    web_sign_in(client, ada)
    other = browser(ctx)
    web_sign_in(other, ada)
    token = csrf_of(client.get("/logout").text)
    assert client.post("/logout", data={"csrf_token": "nope"}).status_code == 403
    out = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get(billing(ada.team_id), follow_redirects=False).status_code == 303
    assert other.get(billing(ada.team_id)).status_code == 200  # the other browser still in
    assert revoke_sessions(ctx, ada.email) == 1
    assert other.get(billing(ada.team_id), follow_redirects=False).status_code == 303


def test_a_demoted_admin_loses_billing_on_the_next_request(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client, "ada")
    bob = sign_up(client, "bob")
    owner = authenticate(ctx, ada.token)
    add_member(ctx, owner, ada.team_id, bob.email, Role.ADMIN)
    web_sign_in(client, bob)
    assert client.get(billing(ada.team_id)).status_code == 200
    change_role(ctx, owner, ada.team_id, bob.user_id, Role.MEMBER)
    page = client.get(billing(ada.team_id))
    assert page.status_code == 403
    assert "Only team admins can see Billing" in page.text
    assert ada.email in page.text


def test_members_and_strangers_can_not_use_the_forms_or_downloads(
    client: TestClient, ctx: Context
) -> None:
    ada, max_, eve = admin_member_stranger(client, ctx)
    create_promo_codes(
        ctx, system_operator("test"), NewPromoCodes(amount="5.00", max_redemptions=9, code="FREE")
    )
    for who, status in ((max_, 403), (eve, 404)):
        visitor = browser(ctx)
        web_sign_in(visitor, who)
        token = csrf_of(visitor.get(billing(who.team_id)).text)
        base = billing(ada.team_id)
        for path, data in (
            (f"{base}/promo-code", {"code": "FREE"}),
            (f"{base}/purchases", {"amount": "10", "idempotency_key": "k1"}),
            (f"{base}/auto-recharge", {"threshold": "5", "restore_to": "20"}),
            (f"{base}/notices", {"url": "https://example.com/hook"}),
            (f"{base}/notices/test", {}),
            (f"{base}/notices/rotate-secret", {}),
            (f"{base}/notices/delete", {}),
        ):
            answer = visitor.post(path, data={**data, "csrf_token": token})
            assert answer.status_code == status, (who.email, path)
        assert visitor.get(f"{base}/credit-history.csv").status_code == status
        assert visitor.get(base).status_code == status
    assert balance(client, ada)["available"]["promotional"] == "3.00"
    missing = browser(ctx)
    web_sign_in(missing, eve)
    stranger = missing.get(billing(ada.team_id)).text
    nowhere = missing.get(billing("team_00000000000000000000000000000000")).text
    assert stranger == nowhere


def test_form_posts_must_be_small_url_encoded_forms(client: TestClient) -> None:
    ada = sign_up(client, "ada")
    web_sign_in(client, ada)
    path = f"{billing(ada.team_id)}/promo-code"
    as_json = client.post(path, json={"code": "X"})
    assert as_json.status_code == 415
    huge = client.post(
        path,
        content=b"code=" + b"A" * 20_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413


def test_the_purchase_form_sends_to_checkout_once_per_key(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client, "ada")
    web_sign_in(client, ada)
    page = client.get(billing(ada.team_id)).text
    key = KEY.search(page)
    assert key is not None
    data = {"amount": "25", "idempotency_key": key.group(1), "csrf_token": csrf_of(page)}
    first = client.post(f"{billing(ada.team_id)}/purchases", data=data, follow_redirects=False)
    again = client.post(f"{billing(ada.team_id)}/purchases", data=data, follow_redirects=False)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert "/sandbox/checkout/" in first.headers["location"]
    purchases = rows(ctx, tables.purchases)
    assert [p["amount_nanos"] for p in purchases] == [25_000_000_000]
    custom = client.post(
        f"{billing(ada.team_id)}/purchases",
        data={**data, "amount": "custom", "custom_amount": "12.345", "idempotency_key": "k2"},
    )
    assert custom.status_code == 422
    assert "whole number of cents" in custom.text


def test_auto_recharge_refusals_show_in_words(client: TestClient) -> None:
    ada = sign_up(client, "ada")
    web_sign_in(client, ada)
    token = page_token(client, ada.team_id)
    path = f"{billing(ada.team_id)}/auto-recharge"
    no_card = client.post(
        path, data={"enabled": "on", "threshold": "5", "restore_to": "25", "csrf_token": token}
    )
    assert no_card.status_code == 409
    assert "needs a saved card" in no_card.text
    too_close = client.post(path, data={"threshold": "20", "restore_to": "25", "csrf_token": token})
    assert too_close.status_code == 422
    saved = client.post(
        path,
        data={"threshold": "5", "restore_to": "25", "csrf_token": token},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert "Auto-recharge settings saved" in client.get(saved.headers["location"]).text


def test_odd_query_values_are_explained_never_a_500(client: TestClient) -> None:
    ada = sign_up(client, "ada")
    web_sign_in(client, ada)
    page = client.get(
        billing(ada.team_id),
        params={
            "type": "nonsense",
            "kind": "\x00",
            "since": "yesterday",
            "until": "2026-13-40",
            "cursor": "not-a-cursor",
            "spend": "<script>",
            "purchase": "pur_../../etc",
            "flash": "<b>hi</b>",
        },
    )
    assert page.status_code == 200
    assert "Unknown entry type" in page.text
    assert "must be a date" in page.text
    for until in ("9999-12-31", "2026-02-30"):
        shown = client.get(billing(ada.team_id), params={"until": until})
        assert shown.status_code == 200, until
        assert "The dates were left out" in shown.text
        csv = client.get(f"{billing(ada.team_id)}/credit-history.csv", params={"until": until})
        assert csv.status_code == 422, until
    early = client.get(billing(ada.team_id), params={"since": "0001-01-01", "until": "0001-01-01"})
    assert early.status_code == 200
    refused = client.get(f"{billing(ada.team_id)}/credit-history.csv", params={"type": "x"})
    assert refused.status_code == 422
    assert "Unknown entry type" in refused.text
    assert "<b>hi</b>" not in page.text and "<script>" not in page.text


def test_the_invoice_pdf_and_history_csv_download_from_the_page(
    client: TestClient, ctx: Context
) -> None:
    platform = Platform.on(client, ctx)
    ada = platform.team()
    set_billing(ctx, ada.team_id, BillingMode.PAY_AS_YOU_GO)
    platform.put_prices(price("llama", "tokens", "1.00", 1000))
    platform.usage(event(ada.team_id, "u1", ctx.clock.now(), tokens=2500))
    web_sign_in(client, ada)
    page = client.get(billing(ada.team_id)).text
    assert "$2.50" in page  # the unpaid balance and the draft invoice
    link = re.search(r'href="([^"]+\.pdf)"', page)
    assert link, "no invoice PDF link"
    pdf = client.get(link.group(1))
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    csv_page = client.get(f"{billing(ada.team_id)}/credit-history.csv", params={"type": "usage"})
    api_csv = client.get(
        f"/v1/teams/{ada.team_id}/credit-history.csv", params={"type": "usage"}, headers=ada.auth
    )
    assert csv_page.status_code == 200
    assert csv_page.text == api_csv.text
    assert csv_page.text.count("\n") == 2  # the header and the one usage entry


def test_a_stale_form_token_says_so_to_admins_members_and_strangers(
    client: TestClient, ctx: Context
) -> None:
    ada, max_, eve = admin_member_stranger(client, ctx)
    path = f"{billing(ada.team_id)}/auto-recharge"
    for who, status in ((ada, 403), (max_, 403), (eve, 403)):
        visitor = browser(ctx)
        web_sign_in(visitor, who)
        answer = visitor.post(
            path, data={"threshold": "5", "restore_to": "25", "csrf_token": "0" * 64}
        )
        assert answer.status_code == status, who.email
        assert "This form has expired" in answer.text
        assert "Only team admins" not in answer.text


def test_a_form_posted_after_the_session_ended_returns_to_the_page(client: TestClient) -> None:
    ada = sign_up(client, "ada")
    answer = client.post(
        f"{billing(ada.team_id)}/promo-code", data={"code": "X"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=" + billing(ada.team_id).replace("/", "%2F")
    scripted = client.post(
        f"{billing(ada.team_id)}/promo-code",
        data={"code": "X"},
        headers={"Accept": "application/json"},
    )
    assert scripted.status_code == 401
    assert scripted.json()["code"] == "unauthenticated"


def test_over_https_the_cookies_are_secure_and_host_only(ctx: Context) -> None:
    secure = TestClient(create_app(ctx), base_url="https://testserver")
    ada = sign_up(secure, "ada")
    form = secure.get("/login")
    assert form.headers["set-cookie"].startswith("__Host-creditledger_visit=")
    assert "Secure" in form.headers["set-cookie"]
    answer = secure.post(
        "/login",
        data={"email": ada.email, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-creditledger_session=")
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert secure.get(billing(ada.team_id)).status_code == 200


def test_downloads_are_not_kept_in_caches(client: TestClient) -> None:
    ada = sign_up(client, "ada")
    web_sign_in(client, ada)
    csv = client.get(f"{billing(ada.team_id)}/credit-history.csv")
    assert csv.headers["cache-control"] == "no-store"
    assert csv.headers["x-content-type-options"] == "nosniff"


def test_ended_sessions_are_forgotten_after_a_week(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    ada = sign_up(client, "ada")
    web_sign_in(client, ada)
    other = browser(ctx)
    web_sign_in(other, ada)
    token = csrf_of(client.get("/logout").text)
    client.post("/logout", data={"csrf_token": token})
    clock.advance(timedelta(days=7, seconds=1))
    assert purge_ended_sessions(ctx) == 1  # the signed-out one; the other ended at 12 h
    assert len(session_rows(ctx)) == 1
    clock.advance(timedelta(hours=ctx.settings.web_session_hours))
    assert purge_ended_sessions(ctx) == 1
    assert session_rows(ctx) == []


def test_the_page_shows_what_requests_in_flight_hold(client: TestClient, ctx: Context) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "tokens", "1.00", 1000))
    ada = sign_up(client, "ada")
    web_sign_in(client, ada)
    assert 'data-testid="held"' not in client.get(billing(ada.team_id)).text
    body = {
        "team_id": ada.team_id,
        "product": "serverless",
        "model": "llama",
        "request_id": "r1",
        "estimate": {"amount": "1.25"},
    }
    assert client.post("/v1/authorize", json=body, headers=bearer(platform.service)).json()[
        "allowed"
    ]
    page = client.get(billing(ada.team_id)).text
    assert "$1.25 held for requests in flight" in page
