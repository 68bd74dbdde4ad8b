"""Team Settings > Billing in Chromium, against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from creditledger.domain.accounts import Principal, Role
from creditledger.domain.grants import GrantKind
from creditledger.services.access import system_operator
from creditledger.services.accounts import add_member
from creditledger.services.promo_codes import NewPromoCodes, create_promo_codes
from creditledger.services.tokens import authenticate
from tests.browser.conftest import PROMO_FAILURES_PER_TEAM, SCREENSHOTS, Live
from tests.conftest import Receiver
from tests.helpers import PASSWORD, Account, Platform, event, price, sign_up
from tests.payments import balance

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DECLINE_CARD = "4000 0000 0000 0002"
SUCCESS_CARD = "4242 4242 4242 4242"


def sign_in(page: Page, live: Live, account: Account) -> None:
    page.goto(live.url("/login"))
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/settings/billing$"))


def billing_url(live: Live, team_id: str) -> str:
    return live.url(f"/teams/{team_id}/settings/billing")


def dollars_shown(page: Page, testid: str) -> str:
    """A figure on the page as the API writes it: ``$1,234.50`` → ``1234.50``."""
    return page.get_by_test_id(testid).inner_text().strip().replace("$", "").replace(",", "")


def promo_code(live: Live, code: str, **terms: Any) -> None:
    new = NewPromoCodes(
        amount=terms.pop("amount", "5.00"),
        max_redemptions=terms.pop("max_redemptions", 100),
        code=code,
        **terms,
    )
    create_promo_codes(live.ctx, system_operator("test"), new)


def redeem(page: Page, code: str) -> None:
    page.get_by_test_id("redeem-promo-code").click()
    dialog = page.get_by_test_id("redeem-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Promo code", exact=True).fill(code)
    dialog.get_by_role("button", name="Redeem").click()


def test_sign_up_lands_on_billing_and_sign_out_ends_the_session(
    live: Live, page: Page, context: BrowserContext
) -> None:
    page.goto(live.url("/"))
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Team name").fill("Grace's team")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/teams/team_\w+/settings/billing$"))
    expect(page.get_by_test_id("balance-promotional")).to_have_text("$3.00")  # sign-up credit
    cookie = next(c for c in context.cookies() if c["name"] == "creditledger_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["value"] not in page.url
    billing = page.url

    page.get_by_role("link", name="Sign out").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    # The old cookie, sent again, is a revoked session: back to the sign-in page.
    context.add_cookies([{"name": cookie["name"], "value": cookie["value"], "url": live.base}])
    page.goto(billing)
    expect(page).to_have_url(re.compile(r"/login\?next="))

    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The email or password is wrong.")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(billing)  # back where the sign-in page was asked for


def test_the_balance_shows_the_api_figures_and_redeem_sits_top_right(
    live: Live, page: Page
) -> None:
    admin = sign_up(live.api, "ada")
    platform = Platform.on(live.api, live.ctx)
    platform.prepaid(admin.team_id, "20.00")
    platform.put_prices(price("llama", "tokens", "1.00", 1000))
    platform.usage(event(admin.team_id, "e1", live.clock.now(), model="llama", tokens=1234))
    sign_in(page, live, admin)

    api = balance(live.api, admin)
    assert dollars_shown(page, "balance-promotional") == api["available"]["promotional"]
    assert dollars_shown(page, "balance-prepaid") == api["available"]["prepaid"]
    assert dollars_shown(page, "unpaid-balance") == api["unpaid_balance"]
    tier = page.get_by_test_id("tier")
    expect(tier).to_contain_text(f"tier {api['tier']['level']}")
    expect(page.get_by_test_id("tier-rpm")).to_have_text(f"{api['tier']['requests_per_minute']:,}")
    expect(page.get_by_test_id("tier-max-tokens")).to_have_text(
        f"{api['tier']['max_output_tokens']:,}"
    )
    expect(page.get_by_test_id("pay-as-you-go")).to_contain_text("Off")

    for width, height in ((1440, 1000), (375, 800)):
        page.set_viewport_size({"width": width, "height": height})
        button = page.get_by_test_id("redeem-promo-code").bounding_box()
        first = page.get_by_test_id("balance").bounding_box()
        assert button is not None and first is not None
        assert button["x"] + button["width"] > width * 0.6, "the button is on the right"
        assert button["y"] < first["y"], "the button is above the balance"
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"the page scrolls sideways at {width} px"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"billing-{width}.png"), full_page=True)


def test_each_refusal_says_why_and_a_good_code_shows_its_credit_without_a_reload(
    live: Live, page: Page
) -> None:
    admin = sign_up(live.api, "ada")
    other = sign_up(live.api, "bob")
    promo_code(live, "GOOD-ONE", amount="7.50")
    promo_code(live, "LAST-ONE", max_redemptions=1)
    promo_code(live, "SOON-GONE", redeem_by=live.clock.now() + timedelta(minutes=30))
    live.api.post(
        f"/v1/teams/{other.team_id}/promo-codes/redeem",
        json={"code": "LAST-ONE"},
        headers=other.auth,
    ).raise_for_status()
    sign_in(page, live, admin)
    page.evaluate("window.notReloaded = true")

    redeem(page, "good one")
    expect(page.get_by_test_id("redeem-dialog")).to_be_hidden()
    expect(page.get_by_test_id("balance-promotional")).to_have_text("$10.50")
    expect(page.locator("#live-status")).to_contain_text("$7.50 of credit was added")
    assert page.evaluate("window.notReloaded") is True, "the page was reloaded"

    live.clock.advance(timedelta(hours=1))
    refusals = [
        ("GOOD-ONE", "already redeemed"),
        ("NO-SUCH-CODE", "not valid"),
        ("SOON-GONE", "expired"),
        ("LAST-ONE", "every redemption"),
    ]
    assert len(refusals) == PROMO_FAILURES_PER_TEAM
    error = page.get_by_test_id("redeem-error")
    for code, reason in refusals:
        redeem(page, code)
        expect(error).to_contain_text(re.compile(reason, re.IGNORECASE))
        expect(page.get_by_test_id("redeem-dialog")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_test_id("redeem-dialog")).to_be_hidden()
    redeem(page, "ANOTHER-GUESS")
    expect(error).to_contain_text(re.compile(r"too many|try again in", re.IGNORECASE))
    expect(page.get_by_test_id("balance-promotional")).to_have_text("$10.50")


def test_the_redeem_dialog_works_from_the_keyboard(live: Live, page: Page) -> None:
    admin = sign_up(live.api, "ada")
    sign_in(page, live, admin)
    page.wait_for_load_state("load")  # the page's script listens before the key is pressed
    opener = page.get_by_test_id("redeem-promo-code")
    opener.focus()
    page.keyboard.press("Enter")
    field = page.get_by_test_id("redeem-dialog").get_by_label("Promo code", exact=True)
    expect(field).to_be_focused()
    for _ in range(4):  # focus stays inside the modal dialog
        page.keyboard.press("Tab")
        inside = page.evaluate(
            "document.getElementById('redeem-dialog').contains(document.activeElement)"
        )
        assert inside
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("redeem-dialog")).to_be_hidden()
    expect(opener).to_be_focused()


def test_without_javascript_a_refusal_still_shows_in_words(live: Live, browser: Any) -> None:
    admin = sign_up(live.api, "ada")
    no_js = browser.new_context(java_script_enabled=False)
    try:
        page = no_js.new_page()
        sign_in(page, live, admin)
        page.get_by_test_id("redeem-promo-code").click()
        page.get_by_label("Promo code", exact=True).fill("NOPE-NOPE")
        page.get_by_role("button", name="Redeem").click()
        expect(page.get_by_test_id("redeem-error")).to_contain_text("not valid")
    finally:
        no_js.close()


def test_buying_ten_dollars_through_the_sandbox_checkout(live: Live, page: Page) -> None:
    admin = sign_up(live.api, "ada")
    sign_in(page, live, admin)

    buy = page.get_by_test_id("buy-credits")
    buy.get_by_label("$10.00", exact=True).check()
    buy.get_by_role("button", name="Continue to payment").click()
    expect(page).to_have_url(re.compile(r"/sandbox/checkout/"))
    page.get_by_label("Card number").fill(DECLINE_CARD)
    page.get_by_role("button", name=re.compile("Pay")).click()
    page.get_by_role("link", name="Back to Billing").click()
    expect(page.get_by_test_id("purchase-result")).to_contain_text("declined")
    expect(page.get_by_test_id("balance-prepaid")).to_have_text("$0.00")

    buy = page.get_by_test_id("buy-credits")
    buy.get_by_label("Other", exact=True).check()
    buy.get_by_label("Other amount in dollars").fill("9.99")
    buy.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_test_id("buy-error")).to_contain_text("between 10.00")

    page.get_by_test_id("buy-credits").get_by_label("$10.00", exact=True).check()
    page.get_by_test_id("buy-credits").get_by_role("button", name="Continue to payment").click()
    page.get_by_label("Card number").fill(SUCCESS_CARD)
    page.get_by_role("button", name=re.compile("Pay")).click()
    page.get_by_role("link", name="Back to Billing").click()
    expect(page.get_by_test_id("purchase-result")).to_contain_text("Payment received")
    expect(page.get_by_test_id("balance-prepaid")).to_have_text("$10.00")
    expect(page.get_by_test_id("pay-as-you-go")).to_contain_text("On")
    assert balance(live.api, admin)["available"]["prepaid"] == "10.00"


def test_credits_in_consumption_order_and_thirty_days_of_spend(live: Live, page: Page) -> None:
    admin = sign_up(live.api, "ada")
    platform = Platform.on(live.api, live.ctx)
    now = live.clock.now()
    platform.prepaid(admin.team_id, "15.00")
    platform.promo(admin.team_id, "4.00", expires_at=now + timedelta(days=3))
    platform.promo(admin.team_id, "6.00", scope={"models": ["llama"]})
    platform.put_prices(
        price("llama", "tokens", "1.00", 1000),
        price("mixtral", "tokens", "2.00", 1000),
    )
    platform.usage(
        event(admin.team_id, "a", live.clock.now(), model="llama", tokens=500),
        event(admin.team_id, "b", live.clock.now(), model="mixtral", tokens=800),
    )
    sign_in(page, live, admin)

    listed = live.api.get(f"/v1/teams/{admin.team_id}/credits", headers=admin.auth).json()
    usable = [g["id"] for g in listed["data"] if g["status"] in ("active", "scheduled")]
    shown = page.get_by_test_id("credits").get_by_test_id("credit")
    assert [shown.nth(i).get_attribute("data-grant-id") for i in range(shown.count())] == usable
    expect(page.get_by_test_id("expires-soon")).to_have_text("expires in 3 days")
    expect(page.locator("[data-testid=credit] progress").first).to_be_visible()

    days = page.locator("#spend-chart g.day")
    expect(days).to_have_count(30)
    dates = [days.nth(i).get_attribute("data-date") for i in range(30)]
    assert dates[-1] == now.date().isoformat()
    assert dates[0] == (now - timedelta(days=29)).date().isoformat()
    today = page.locator(f"#spend-chart g.day[data-date='{now.date().isoformat()}'] title")
    expect(today).to_contain_text("$2.10 spent")
    expect(page.get_by_test_id("spend-summary")).to_contain_text("$2.10 spent")
    page.get_by_role("link", name="By model").click()
    legend = page.locator("#spend-chart .legend")
    expect(legend).to_contain_text("llama: $0.50")
    expect(legend).to_contain_text("mixtral: $1.60")


def test_history_filters_and_the_csv_of_the_same_filter(live: Live, page: Page) -> None:
    admin = sign_up(live.api, "ada")
    platform = Platform.on(live.api, live.ctx)
    platform.promo(admin.team_id, "4.00")
    platform.put_prices(price("llama", "tokens", "1.00", 1000))
    platform.usage(event(admin.team_id, "a", live.clock.now(), model="llama", tokens=500))
    sign_in(page, live, admin)
    history = page.get_by_test_id("credit-history")
    expect(history.get_by_test_id("history-row")).to_have_count(3)

    history.get_by_label("Type").select_option("grant")
    history.get_by_role("button", name="Apply").click()
    rows = page.get_by_test_id("credit-history").get_by_test_id("history-row")
    expect(rows).to_have_count(2)
    for i in range(2):
        expect(rows.nth(i)).to_contain_text("Credit added")

    with page.expect_download() as download:
        page.get_by_test_id("history-csv").click()
    text = download.value.path().read_text()
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [r["type"] for r in exported] == ["grant", "grant"]
    assert {r["kind"] for r in exported} == {GrantKind.PROMOTIONAL.value}


def test_a_member_gets_the_403_page_naming_the_admins(live: Live, page: Page) -> None:
    admin = sign_up(live.api, "ada")
    member = sign_up(live.api, "max")
    add_member(live.ctx, _principal(live, admin), admin.team_id, member.email, Role.MEMBER)
    page.goto(live.url("/login"))
    page.get_by_label("Email").fill(member.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(billing_url(live, admin.team_id))
    forbidden = page.get_by_test_id("forbidden")
    expect(forbidden).to_contain_text("Only team admins can see Billing")
    expect(forbidden).to_contain_text(admin.email)
    assert page.locator("[data-testid=balance-promotional]").count() == 0


def test_another_teams_admin_gets_the_same_404_as_a_missing_team(live: Live, page: Page) -> None:
    ada = sign_up(live.api, "ada")
    eve = sign_up(live.api, "eve")
    sign_in(page, live, eve)
    theirs = page.goto(billing_url(live, ada.team_id))
    assert theirs is not None and theirs.status == 404
    shown = page.get_by_test_id("not-found").inner_text()
    missing = page.goto(billing_url(live, "team_0000000000000000000000000000000"))
    assert missing is not None and missing.status == 404
    assert page.get_by_test_id("not-found").inner_text() == shown


def test_a_form_without_its_csrf_token_changes_nothing(live: Live, page: Page) -> None:
    admin = sign_up(live.api, "ada")
    promo_code(live, "GOOD-ONE")
    sign_in(page, live, admin)
    answer = page.request.post(
        billing_url(live, admin.team_id) + "/promo-code", form={"code": "GOOD-ONE"}
    )
    assert answer.status == 403
    forged = page.request.post(
        billing_url(live, admin.team_id) + "/promo-code",
        form={"code": "GOOD-ONE", "csrf_token": "0" * 64},
    )
    assert forged.status == 403
    assert balance(live.api, admin)["available"]["promotional"] == "3.00"
    headers = page.request.get(billing_url(live, admin.team_id)).headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"]


def _principal(live: Live, account: Account) -> Principal:
    return authenticate(live.ctx, account.token)


def test_notices_are_set_tested_and_logged_on_the_page(
    live: Live, page: Page, receiver: Receiver
) -> None:
    admin = sign_up(live.api, "ada")
    sign_in(page, live, admin)
    notices = page.get_by_test_id("notices")
    notices.get_by_label("Webhook URL").fill(receiver.url)
    notices.get_by_label("Invoice paid").uncheck()
    notices.get_by_role("button", name="Save notices").click()
    expect(page.get_by_test_id("webhook-secret")).to_contain_text("whsec_")
    page.get_by_test_id("notices").get_by_role("button", name="Send a test notice").click()
    expect(page.get_by_test_id("webhook-test-result")).to_have_text("Test notice delivered.")
    expect(page.get_by_test_id("notice-row")).to_contain_text("HTTP 200")
    page.get_by_test_id("notices").screenshot(path=str(SCREENSHOTS / "billing-notices.png"))
    assert len(receiver.got) == 1
    webhook = live.api.get(
        f"/v1/teams/{admin.team_id}/notification-webhook", headers=admin.auth
    ).json()
    assert "invoice.paid" not in webhook["events"] and len(webhook["events"]) == 7
