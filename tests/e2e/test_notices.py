"""Notices on both backends: each event type written once by its cause (never by one that
rolled back), delivered signed to a receiver on localhost that verifies them with the
Standard Webhooks reference check, retried with back-off, deduplicable by id, delivered
once by two runners at once, and the webhook disabled after every try failed."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook as Verifier

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.notify.webhooks import StandardWebhooks
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.bootstrap import build_context
from creditledger.domain.money import dollars
from creditledger.domain.notices import CLAIM, EVENT_TYPES, LOG_KEPT, MAX_ATTEMPTS
from creditledger.entrypoints.api.app import create_app
from creditledger.entrypoints.api.schemas import NoticeEventType
from creditledger.services import notices, recharge
from creditledger.services.context import Context
from creditledger.services.expiry import expire_credits
from creditledger.services.invoices import run_invoices
from creditledger.services.tokens import authenticate
from tests.conftest import Receiver, make_settings
from tests.helpers import Account, Platform, at, bearer, event, price, sign_up
from tests.payments import buy, draw_down


def set_webhook(client: TestClient, team: Account, url: str, **body: Any) -> dict[str, Any]:
    response = client.put(
        f"/v1/teams/{team.team_id}/notification-webhook",
        json={"url": url, **body},
        headers=team.auth,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def outbox(ctx: Context, team_id: str) -> list[str]:
    with ctx.uow(write=False) as uow:
        return [n.type for n in reversed(uow.notices.page(team_id, None, 500))]


def verified(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """Every body received, each checked by the Standard Webhooks reference check."""
    out = []
    for headers, body in receiver.got:
        payload: dict[str, Any] = Verifier(secret).verify(body, headers)
        out.append(payload)
    return out


def test_the_event_types_of_the_api_are_the_domain_s() -> None:
    assert NoticeEventType.__args__ == EVENT_TYPES  # type: ignore[attr-defined]


def test_a_low_balance_is_told_once_per_crossing_signed_and_verifiable(
    client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.50"))
    team = platform.team()
    platform.promo(team.team_id, "2.00")
    hook = set_webhook(client, team, receiver.url)
    assert hook["secret"].startswith("whsec_") and hook["events"] is None
    shown = client.get(f"/v1/teams/{team.team_id}/notification-webhook", headers=team.auth)
    assert "secret" not in shown.json()
    now = ctx.clock.now()
    platform.usage(event(team.team_id, "e1", now, requests=1))  # $1.50: above $1.00
    assert outbox(ctx, team.team_id) == []
    platform.usage(event(team.team_id, "e2", now, requests=1))  # $1.00: not below
    platform.usage(event(team.team_id, "e3", now, requests=1))  # $0.50: below
    platform.usage(event(team.team_id, "e4", now, requests=1))  # $0.00: still below
    assert outbox(ctx, team.team_id) == ["balance.low"]
    assert notices.deliver_due(ctx) == 1
    (sent,) = verified(receiver, hook["secret"])
    assert sent["type"] == "balance.low"
    assert sent["data"]["available"] == "0.50" and sent["data"]["threshold"] == "1.00"
    assert sent["data"]["billing_url"].endswith(f"/teams/{team.team_id}/settings/billing")
    headers = receiver.got[0][0]
    assert headers["webhook-id"].startswith("msg_") and headers["webhook-signature"].startswith(
        "v1,"
    )
    platform.promo(team.team_id, "5.00")  # recovered…
    platform.usage(event(team.team_id, "e5", now, requests=1))  # $4.50: above, mark cleared
    for n in range(6, 14):
        platform.usage(event(team.team_id, f"e{n}", now, requests=1))  # …and below again
    assert outbox(ctx, team.team_id) == ["balance.low", "balance.low"]


def test_a_cause_that_rolls_back_writes_no_notice(
    client: TestClient, ctx: Context, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.50"))
    team = platform.team()
    platform.promo(team.team_id, "1.00")
    set_webhook(client, team, receiver.url)
    real = notices.low_balance_after

    def then_fail(*args: Any) -> int:
        assert real(*args) == 1  # the notice is written in the batch's transaction…
        raise RuntimeError("the batch fails after it")

    monkeypatch.setattr(notices, "low_balance_after", then_fail)
    failed = client.post(
        "/v1/usage-events",
        json={"events": [event(team.team_id, "e1", ctx.clock.now(), requests=1)]},
        headers=bearer(platform.service),
    )
    assert failed.status_code == 500
    assert outbox(ctx, team.team_id) == []  # …and rolled back with it


def test_expiring_and_expired_credit_and_invoices_are_told_once(
    client: TestClient, ctx: Context, clock: FixedClock, receiver: Receiver
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "input_tokens", "0.20", 1_000_000))
    team = platform.team()
    set_webhook(client, team, receiver.url, events=["credits.expiring", "credits.expired"])
    clock.at = at("2026-11-20T00:00")
    platform.promo(team.team_id, "3.00", expires_at=at("2026-11-25T00:00"))
    assert notices.notify_expiring(ctx) == 1
    assert notices.notify_expiring(ctx) == 0  # once per grant
    clock.at = at("2026-11-27T00:00")  # past the late-arrival window
    assert expire_credits(ctx) == 1
    assert outbox(ctx, team.team_id) == ["credits.expiring", "credits.expired"]

    set_webhook(client, team, receiver.url, events=["invoice.opened"])
    platform.usage(event(team.team_id, "u1", at("2026-11-26T12:00"), input_tokens=75_000_000))
    clock.at = at("2026-12-01T01:30")
    assert run_invoices(ctx) == 1
    assert outbox(ctx, team.team_id)[-1] == "invoice.opened"
    assert notices.deliver_due(ctx) == 3
    assert [orjson.loads(body)["type"] for _, body in receiver.got] == [
        "credits.expiring",
        "credits.expired",
        "invoice.opened",
    ]


def test_a_declined_recharge_tells_payment_failed_and_auto_recharge_disabled(
    client: TestClient, ctx: Context, sandbox: SandboxProvider, receiver: Receiver
) -> None:
    ada = sign_up(client)
    buy(client, sandbox, ada, "10.00")
    recharge.set_auto_recharge(
        ctx, authenticate(ctx, ada.token), ada.team_id, True, "5.00", "20.00"
    )
    set_webhook(client, ada, receiver.url, events=["payment.failed", "auto_recharge.disabled"])
    with ctx.uow() as uow:  # the saved card has since started to decline
        uow.payments.save_method(ada.team_id, "sandbox", "cus_x", "pm_sb_0002_x", ctx.clock.now())
        uow.commit()
    draw_down(ctx, ada.team_id, dollars("12.00"))
    assert recharge.recharge_if_needed(ctx, ada.team_id) is True
    assert outbox(ctx, ada.team_id) == ["payment.failed", "auto_recharge.disabled"]
    with ctx.uow(write=False) as uow:
        failed = uow.notices.page(ada.team_id, None, 10)[-1]
    assert failed.payload["data"]["payment"] == "recharge"
    assert "declin" in failed.payload["data"]["reason"]


def test_failures_are_tried_again_with_back_off_under_one_id_then_delivered(
    client: TestClient, ctx: Context, clock: FixedClock, receiver: Receiver
) -> None:
    team = Platform.on(client, ctx).team()
    set_webhook(client, team, receiver.url)
    receiver.statuses = [500, 503]
    ping = client.post(f"/v1/teams/{team.team_id}/notification-webhook/test", headers=team.auth)
    assert ping.status_code == 200, ping.text
    first = ping.json()
    assert first["state"] == "pending" and first["attempts"] == 1 and first["last_status"] == 500
    retry_at = first["next_attempt_at"]
    assert retry_at is not None
    assert notices.deliver_due(ctx) == 0  # not due yet
    clock.at = clock.at + timedelta(seconds=40)  # 30 s ± 20 %
    assert notices.deliver_due(ctx) == 0  # 503
    clock.at = clock.at + timedelta(seconds=80)  # 60 s ± 20 %
    assert notices.deliver_due(ctx) == 1
    ids = {headers["webhook-id"] for headers, _ in receiver.got}
    assert len(receiver.got) == 3 and ids == {first["id"]}  # receivers dedupe by it
    log = client.get(f"/v1/teams/{team.team_id}/notifications", headers=team.auth).json()
    (row,) = log["data"]
    assert row["state"] == "delivered" and row["attempts"] == 3 and row["last_status"] == 200


def test_a_receiver_that_times_out_is_tried_again(
    client: TestClient, ctx: Context, clock: FixedClock, receiver: Receiver
) -> None:
    slow = replace(ctx, notifier=StandardWebhooks(allow_private=True, read_timeout=0.2))
    team = Platform.on(client, ctx).team()
    set_webhook(client, team, receiver.url)
    receiver.delay = 0.5
    sent = notices.send_test(slow, authenticate(ctx, team.token), team.team_id)
    assert sent.state == "pending" and sent.last_error == "timeout"
    receiver.delay = 0.0
    clock.at = clock.at + timedelta(minutes=1)
    assert notices.deliver_due(slow) == 1


def test_every_try_failing_disables_the_webhook_and_says_why(
    client: TestClient, ctx: Context, clock: FixedClock, receiver: Receiver
) -> None:
    team = Platform.on(client, ctx).team()
    set_webhook(client, team, receiver.url)
    receiver.statuses = [500] * MAX_ATTEMPTS
    notices.send_test(ctx, authenticate(ctx, team.token), team.team_id)
    for _ in range(MAX_ATTEMPTS - 1):
        clock.at = clock.at + timedelta(hours=15)
        notices.deliver_due(ctx)
    shown = client.get(f"/v1/teams/{team.team_id}/notification-webhook", headers=team.auth)
    body = shown.json()
    assert body["disabled_at"] is not None and "status 500" in body["disabled_reason"]
    (row,) = client.get(f"/v1/teams/{team.team_id}/notifications", headers=team.auth).json()["data"]
    assert row["state"] == "failed" and row["attempts"] == MAX_ATTEMPTS
    assert len(receiver.got) == MAX_ATTEMPTS
    set_webhook(client, team, receiver.url)  # saving it again enables it
    again = client.get(f"/v1/teams/{team.team_id}/notification-webhook", headers=team.auth)
    assert again.json()["disabled_at"] is None


def test_two_runners_at_once_deliver_each_notice_once(
    client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    team = Platform.on(client, ctx).team()
    set_webhook(client, team, receiver.url)
    with ctx.uow() as uow:
        for _ in range(20):
            notices.notify(uow, ctx, team.team_id, "ping", {}, ctx.clock.now())
        uow.commit()
    delivered: list[int] = []
    runners = [
        threading.Thread(target=lambda: delivered.append(notices.deliver_due(ctx)))
        for _ in range(2)
    ]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    assert sum(delivered) == 20
    ids = [headers["webhook-id"] for headers, _ in receiver.got]
    assert len(ids) == len(set(ids)) == 20


def test_rotating_the_secret_shows_it_once_and_signs_with_it(
    client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    team = Platform.on(client, ctx).team()
    first = set_webhook(client, team, receiver.url)
    replaced = set_webhook(client, team, receiver.url, events=["payment.failed"])
    assert "secret" not in replaced and replaced["events"] == ["payment.failed"]
    rotated = client.post(
        f"/v1/teams/{team.team_id}/notification-webhook/rotate-secret", headers=team.auth
    ).json()
    assert rotated["secret"] != first["secret"]
    client.post(f"/v1/teams/{team.team_id}/notification-webhook/test", headers=team.auth)
    (ping,) = verified(receiver, rotated["secret"])
    assert ping["type"] == "ping"
    gone = client.delete(f"/v1/teams/{team.team_id}/notification-webhook", headers=team.auth)
    assert gone.status_code == 204
    missing = client.get(f"/v1/teams/{team.team_id}/notification-webhook", headers=team.auth)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://localhost/hook",
        "ftp://example.com/hook",
    ],
)
def test_the_guard_refuses_private_and_plain_urls_unless_allowed(
    database_url: str, clock: FixedClock, url: str
) -> None:
    guarded = build_context(
        make_settings(database_url, notify_allow_private_urls=False), clock=clock
    )
    with TestClient(create_app(guarded)) as client:
        team = Platform.on(client, guarded).team()
        response = client.put(
            f"/v1/teams/{team.team_id}/notification-webhook",
            json={"url": url},
            headers=team.auth,
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["param"] == "url"
        assert (
            client.get(
                f"/v1/teams/{team.team_id}/notification-webhook", headers=team.auth
            ).status_code
            == 404
        )
    guarded.uow.dispose()


def test_unknown_event_types_and_bad_cursors_are_refused(
    client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    team = Platform.on(client, ctx).team()
    response = client.put(
        f"/v1/teams/{team.team_id}/notification-webhook",
        json={"url": receiver.url, "events": ["balance.high"]},
        headers=team.auth,
    )
    assert response.status_code == 422 and response.json()["error"]["param"] == "events.0"
    page = client.get(
        f"/v1/teams/{team.team_id}/notifications", params={"cursor": "nope"}, headers=team.auth
    )
    assert page.status_code == 400 and page.json()["error"]["code"] == "invalid_cursor"


def test_a_notice_outlives_the_process_and_a_runner_that_died_holding_it(
    client: TestClient, ctx: Context, clock: FixedClock, receiver: Receiver, database_url: str
) -> None:
    team = Platform.on(client, ctx).team()
    set_webhook(client, team, receiver.url)
    with ctx.uow() as uow:
        notice = notices.notify(uow, ctx, team.team_id, "ping", {}, ctx.clock.now())
        assert notice is not None
        assert uow.notices.claim(notice.id, 0, clock.now(), clock.now() + CLAIM)  # then it dies
        uow.commit()
    restarted = build_context(make_settings(database_url), clock=clock)
    assert notices.deliver_due(restarted) == 0  # still held by the runner that died
    clock.at = clock.at + CLAIM
    assert notices.deliver_due(restarted) == 1
    assert [h["webhook-id"] for h, _ in receiver.got] == [notice.id]
    restarted.uow.dispose()


def test_a_runner_that_read_a_notice_before_another_tried_it_does_not_send_it_again(
    client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    team = Platform.on(client, ctx).team()
    set_webhook(client, team, receiver.url)
    receiver.statuses = [500]
    with ctx.uow() as uow:
        notice = notices.notify(uow, ctx, team.team_id, "ping", {}, ctx.clock.now())
        uow.commit()
    assert notice is not None
    with ctx.uow(write=False) as uow:
        (seen_by_b,) = uow.notices.due(ctx.clock.now(), 10)  # runner B reads it…
    assert notices.deliver_due(ctx) == 0  # …runner A tries it: 500, retry in ~30 s
    assert notices._try(ctx, seen_by_b) is None  # B's stale copy is not sent again
    assert len(receiver.got) == 1
    with ctx.uow(write=False) as uow:
        stored = uow.notices.get(notice.id)
    assert stored is not None and stored.attempts == 1


def test_testing_a_disabled_webhook_is_a_conflict_and_a_bad_idna_name_is_refused(
    client: TestClient, ctx: Context, clock: FixedClock, receiver: Receiver
) -> None:
    team = Platform.on(client, ctx).team()
    set_webhook(client, team, receiver.url)
    with ctx.uow() as uow:
        uow.notices.disable_webhook(team.team_id, "test", clock.now())
        uow.commit()
    tested = client.post(f"/v1/teams/{team.team_id}/notification-webhook/test", headers=team.auth)
    assert tested.status_code == 409, tested.text
    assert tested.json()["error"]["code"] == "webhook_disabled"
    for url in ("https://xn--/", "https://xn--a.com/x"):
        bad = client.put(
            f"/v1/teams/{team.team_id}/notification-webhook", json={"url": url}, headers=team.auth
        )
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "url"


def test_credit_that_expires_below_the_threshold_is_told_as_a_low_balance(
    client: TestClient, ctx: Context, clock: FixedClock, receiver: Receiver
) -> None:
    platform = Platform.on(client, ctx)
    team = platform.team()
    set_webhook(client, team, receiver.url, events=["balance.low"])
    clock.at = at("2026-11-20T00:00")
    platform.promo(team.team_id, "0.50")
    platform.promo(team.team_id, "5.00", expires_at=at("2026-11-25T00:00"))
    clock.at = at("2026-11-27T00:00")
    assert expire_credits(ctx) == 1
    assert outbox(ctx, team.team_id) == ["balance.low"]


def test_the_delivery_log_forgets_ended_notices_after_30_days(
    client: TestClient, ctx: Context, clock: FixedClock, receiver: Receiver
) -> None:
    team = Platform.on(client, ctx).team()
    set_webhook(client, team, receiver.url)
    notices.send_test(ctx, authenticate(ctx, team.token), team.team_id)  # delivered
    with ctx.uow() as uow:
        waiting = notices.notify(uow, ctx, team.team_id, "ping", {}, clock.now())
        uow.commit()
    assert waiting is not None
    clock.at = clock.at + LOG_KEPT
    assert notices.purge_notices(ctx) == 0  # not older than 30 days yet
    clock.at = clock.at + timedelta(seconds=1)
    assert notices.purge_notices(ctx) == 1
    assert outbox(ctx, team.team_id) == ["ping"]  # the pending one stays
