"""Monthly invoices through the API on both backends: drafts with live lines, opening
after the late-arrival window with a number, charging, paying by checkout, retries,
uncollectible, late usage, the minimum charge, voiding, and the PDF."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from pypdf import PdfReader

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.services.context import Context
from creditledger.services.invoices import run_invoice_retries, run_invoices
from tests.helpers import Account, Platform, at, bearer, error_code, event, price
from tests.payments import SUCCESS_CARD, balance, buy, deliver, pay

# Usage of November is invoiced once its window closes: 1 December, 01:00 UTC.
AFTER_NOVEMBER = at("2026-12-01T01:30")


def setup(client: TestClient, ctx: Context) -> tuple[Platform, Account]:
    platform = Platform.on(client, ctx)
    platform.put_prices(
        price("llama", "input_tokens", "0.20", 1_000_000),
        price("mistral", "input_tokens", "1.00", 1_000_000),
    )
    return platform, platform.team()


def use(
    platform: Platform, team: Account, event_id: str, when: str, tokens: int, **kw: Any
) -> None:
    result = platform.usage(event(team.team_id, event_id, at(when), input_tokens=tokens, **kw))
    assert result["accepted"] == 1, result


def invoices(client: TestClient, team: Account, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/v1/teams/{team.team_id}/invoices", headers=team.auth, params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def one(client: TestClient, team: Account, invoice_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/teams/{team.team_id}/invoices/{invoice_id}", headers=team.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def pay_invoice(client: TestClient, team: Account, invoice_id: str, key: str, **body: Any) -> Any:
    return client.post(
        f"/v1/teams/{team.team_id}/invoices/{invoice_id}/pay",
        json=body,
        headers=team.auth | {"Idempotency-Key": key},
    )


def test_a_prepaid_team_sees_a_live_draft_then_one_numbered_invoice_it_pays_by_checkout(
    client: TestClient, ctx: Context, clock: FixedClock, sandbox: SandboxProvider
) -> None:
    platform, team = setup(client, ctx)
    use(platform, team, "e1", "2026-11-24T10:00", 10_000_000)  # $2.00 of llama
    use(platform, team, "e2", "2026-11-24T11:00", 1_234_567, model="mistral")  # $1.234567
    (draft,) = invoices(client, team)
    assert draft["status"] == "draft" and draft["number"] is None
    assert [(line["model"], line["amount"]) for line in draft["lines"]] == [
        ("llama", "2.00"),
        ("mistral", "1.23"),
    ]
    assert draft["lines"][0]["quantity"] == 10_000_000
    assert draft["lines"][0]["unit"] == "input_tokens"
    assert draft["total"] == "3.23" and draft["carried_to_next"] == "0.004567"
    assert one(client, team, draft["id"]) == draft

    clock.at = AFTER_NOVEMBER
    assert run_invoices(ctx) == 1
    assert run_invoices(ctx) == 0  # once
    (opened,) = invoices(client, team)
    assert opened["id"] == draft["id"]
    assert opened["status"] == "open" and opened["number"] == "CL-000001"
    assert opened["amount_due"] == "3.23" and opened["attempts"] == []  # prepaid: not charged
    assert balance(client, team)["unpaid_balance"] == "3.234567"

    paid = pay_invoice(client, team, opened["id"], "pay-1")
    assert paid.status_code == 200, paid.text
    url = paid.json()["checkout_url"]
    assert url.startswith("http://testserver/sandbox/checkout/")
    assert pay_invoice(client, team, opened["id"], "pay-1").json() == paid.json()  # replayed
    pay(client, url, SUCCESS_CARD)
    assert all(r.status_code == 200 for r in deliver(client, sandbox))
    settled = one(client, team, opened["id"])
    assert settled["status"] == "paid" and settled["amount_due"] == "0.00"
    after = balance(client, team)
    assert after["unpaid_balance"] == "0.004567"  # the remainder, carried to the next invoice
    assert after["lifetime_paid"] == "3.23"
    history = client.get(
        f"/v1/teams/{team.team_id}/credit-history", headers=team.auth, params={"type": "invoice"}
    ).json()["data"]
    assert any("CL-000001 paid" in entry["description"] for entry in history)

    pdf = client.get(f"/v1/teams/{team.team_id}/invoices/{opened['id']}.pdf", headers=team.auth)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "CL-000001" in text and "3.23" in text and "llama" in text and "mistral" in text


def test_a_pay_as_you_go_team_is_charged_when_the_invoice_opens(
    client: TestClient, ctx: Context, clock: FixedClock, sandbox: SandboxProvider
) -> None:
    platform, team = setup(client, ctx)
    buy(client, sandbox, team, "10.00")  # saves the card, unlocks pay-as-you-go
    use(platform, team, "e1", "2026-11-24T12:00", 75_000_000)  # $15.00: $5.00 unpaid
    clock.at = AFTER_NOVEMBER
    assert run_invoices(ctx) == 1
    (invoice,) = invoices(client, team)
    assert invoice["status"] == "paid" and invoice["total"] == "5.00"
    assert invoice["credits_applied"] == {"promotional": "0.00", "prepaid": "10.00"}
    assert [a["outcome"] for a in invoice["attempts"]] == ["succeeded"]
    assert balance(client, team)["lifetime_paid"] == "15.00"
    deliver(client, sandbox)  # the charge's webhook: already applied, nothing more
    assert one(client, team, invoice["id"])["status"] == "paid"
    assert balance(client, team)["lifetime_paid"] == "15.00"


def test_a_declined_card_is_retried_after_1_3_and_7_days_then_uncollectible(
    client: TestClient, ctx: Context, clock: FixedClock, sandbox: SandboxProvider
) -> None:
    platform, team = setup(client, ctx)
    buy(client, sandbox, team, "10.00")
    # The saved card starts to decline (the sandbox declines a card ending 0002).
    with ctx.uow() as uow:
        uow.payments.save_method(team.team_id, "sandbox", "cus_x", "pm_sb_0002_x", clock.now())
        uow.commit()
    use(platform, team, "e1", "2026-11-24T12:00", 75_000_000)
    clock.at = AFTER_NOVEMBER
    run_invoices(ctx)
    (invoice,) = invoices(client, team)
    assert invoice["status"] == "open" and [a["outcome"] for a in invoice["attempts"]] == ["failed"]
    assert invoice["next_charge_at"] == "2026-12-02T01:30:00Z"
    for days, tries in ((1, 2), (3, 3)):
        clock.at = AFTER_NOVEMBER + timedelta(days=days)
        assert run_invoice_retries(ctx) == 1
        assert len(one(client, team, invoice["id"])["attempts"]) == tries
    clock.at = AFTER_NOVEMBER + timedelta(days=7)
    run_invoice_retries(ctx)
    final = one(client, team, invoice["id"])
    assert final["status"] == "uncollectible" and len(final["attempts"]) == 4
    assert balance(client, team)["billing_mode"] == "prepaid"

    # Paying it by hand gives pay-as-you-go back.
    started = pay_invoice(client, team, invoice["id"], "by-hand")
    pay(client, started.json()["checkout_url"], SUCCESS_CARD)
    deliver(client, sandbox)
    assert one(client, team, invoice["id"])["status"] == "paid"
    assert balance(client, team)["billing_mode"] == "pay_as_you_go"


def test_late_usage_goes_on_the_next_invoice_as_a_late_line_and_small_totals_roll_over(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform, team = setup(client, ctx)
    use(platform, team, "e1", "2026-11-24T10:00", 2_000_000)  # $0.40: under $0.50
    clock.at = AFTER_NOVEMBER
    run_invoices(ctx)
    (november,) = invoices(client, team)
    assert november["status"] == "paid" and november["total"] == "0.00"
    assert november["carried_to_next"] == "0.40"
    clock.at = at("2026-12-02T11:00")
    use(platform, team, "late", "2026-11-30T23:00", 10_000_000)  # arrives after it closed
    use(platform, team, "e2", "2026-12-02T10:00", 5_000_000)
    december = invoices(client, team)[0]
    assert december["status"] == "draft"
    assert [(line["description"], line["amount"], line["late"]) for line in december["lines"]] == [
        ("serverless llama (late usage for November 2026)", "2.00", True),
        ("serverless llama", "1.00", False),
        ("Carried from an earlier invoice", "0.40", False),
    ]
    assert december["total"] == "3.40"


def test_operators_void_an_invoice_which_is_never_billed_again(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform, team = setup(client, ctx)
    use(platform, team, "e1", "2026-11-24T10:00", 10_000_000)
    clock.at = AFTER_NOVEMBER
    run_invoices(ctx)
    (invoice,) = invoices(client, team)
    path = f"/v1/teams/{team.team_id}/invoices/{invoice['id']}/void"
    assert client.post(path, json={"note": "goodwill"}, headers=team.auth).status_code == 403
    voided = client.post(path, json={"note": "goodwill"}, headers=bearer(platform.operator))
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "void" and voided.json()["void_note"] == "goodwill"
    assert balance(client, team)["unpaid_balance"] == "0.00"
    again = client.post(path, json={"note": "again"}, headers=bearer(platform.operator))
    assert again.status_code == 409 and error_code(again) == "invoice_status_conflict"
    refused = pay_invoice(client, team, invoice["id"], "k")
    assert refused.status_code == 409


def test_an_admin_pays_with_the_saved_card_and_drafts_can_not_be_paid(
    client: TestClient, ctx: Context, clock: FixedClock, sandbox: SandboxProvider
) -> None:
    platform, team = setup(client, ctx)
    buy(client, sandbox, team, "10.00")
    # An operator sets the team prepaid-only again: invoices are then not charged by themselves.
    settings = client.put(
        f"/v1/teams/{team.team_id}/billing-settings",
        json={"billing_mode": "prepaid"},
        headers=bearer(platform.operator),
    )
    assert settings.status_code == 200
    use(platform, team, "e1", "2026-11-24T12:00", 60_000_000)  # $12.00: $2.00 unpaid
    (draft,) = invoices(client, team)
    refused = pay_invoice(client, team, draft["id"], "draft-key")
    assert (refused.status_code, error_code(refused)) == (409, "invoice_status_conflict")
    clock.at = AFTER_NOVEMBER
    run_invoices(ctx)
    assert one(client, team, draft["id"])["attempts"] == []
    paid = pay_invoice(client, team, draft["id"], "saved", use_saved_payment_method=True)
    assert paid.status_code == 200, paid.text
    assert paid.json()["outcome"] == "succeeded"
    assert paid.json()["invoice"]["status"] == "paid"
    assert balance(client, team)["lifetime_paid"] == "12.00"
    again = pay_invoice(client, team, draft["id"], "saved-2", use_saved_payment_method=True)
    assert (again.status_code, error_code(again)) == (409, "invoice_status_conflict")


def test_the_list_pages_newest_month_first_and_filters_by_status(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform, team = setup(client, ctx)
    use(platform, team, "e1", "2026-11-24T10:00", 10_000_000)
    clock.at = AFTER_NOVEMBER
    run_invoices(ctx)
    use(platform, team, "e2", "2026-12-01T01:29", 10_000_000)
    first = client.get(
        f"/v1/teams/{team.team_id}/invoices", headers=team.auth, params={"limit": 1}
    ).json()
    assert [i["status"] for i in first["data"]] == ["draft"]
    second = client.get(
        f"/v1/teams/{team.team_id}/invoices",
        headers=team.auth,
        params={"limit": 1, "cursor": first["next_cursor"]},
    ).json()
    assert [i["number"] for i in second["data"]] == ["CL-000001"]
    assert second["next_cursor"] is None
    assert [i["status"] for i in invoices(client, team, status="open")] == ["open"]
    assert [i["status"] for i in invoices(client, team, status="draft")] == ["draft"]


def test_bad_input_is_refused_with_a_stable_code_and_changes_nothing(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform, team = setup(client, ctx)
    other = platform.team()
    use(platform, team, "e1", "2026-11-24T10:00", 10_000_000)
    clock.at = AFTER_NOVEMBER
    run_invoices(ctx)
    (invoice,) = invoices(client, team)
    base = f"/v1/teams/{team.team_id}/invoices"
    op = bearer(platform.operator)
    for path in (f"{base}/inv_00000000000000000000000000000000", f"{base}/../x", f"{base}/%00"):
        assert client.get(path, headers=team.auth).status_code == 404
    # Another team's invoice answers like a missing one.
    foreign = client.get(f"/v1/teams/{other.team_id}/invoices/{invoice['id']}", headers=other.auth)
    missing = client.get(
        f"/v1/teams/{other.team_id}/invoices/inv_00000000000000000000000000000000",
        headers=other.auth,
    )
    assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())
    void_bodies: list[Any] = [{}, {"note": ""}, {"note": "x" * 501}, {"note": 5}, {"x": 1}]
    for body in void_bodies:
        refused = client.post(f"{base}/{invoice['id']}/void", json=body, headers=op)
        assert refused.status_code in (400, 422), (body, refused.text)
    pay_bodies: list[Any] = [{"use_saved_payment_method": "yes"}, {"other": True}, []]
    for body in pay_bodies:
        refused = client.post(
            f"{base}/{invoice['id']}/pay", json=body, headers=team.auth | {"Idempotency-Key": "b"}
        )
        assert refused.status_code in (400, 422), (body, refused.text)
    no_key = client.post(f"{base}/{invoice['id']}/pay", json={}, headers=team.auth)
    assert no_key.status_code == 400
    assert client.get(f"{base}?status=bogus", headers=team.auth).status_code == 422
    assert client.get(f"{base}?cursor=forged", headers=team.auth).status_code in (400, 422)
    assert one(client, team, invoice["id"]) == invoice


def test_an_operator_voids_the_earliest_draft_and_its_usage_is_written_off(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform, team = setup(client, ctx)
    use(platform, team, "e1", "2026-11-24T10:00", 10_000_000)
    (draft,) = invoices(client, team)
    voided = client.post(
        f"/v1/teams/{team.team_id}/invoices/{draft['id']}/void",
        json={"note": "trial usage forgiven"},
        headers=bearer(platform.operator),
    )
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "void" and voided.json()["number"] is None
    assert balance(client, team)["unpaid_balance"] == "0.00"
    clock.at = AFTER_NOVEMBER
    assert run_invoices(ctx) == 0  # nothing left to bill for November
    history = client.get(
        f"/v1/teams/{team.team_id}/credit-history", headers=team.auth, params={"type": "invoice"}
    ).json()["data"]
    assert any("trial usage forgiven" in entry["description"] for entry in history)
