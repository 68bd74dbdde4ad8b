"""The Notices section of the Billing page: set a webhook (its secret shown once), send a
test, see the delivery log, rotate the secret and stop notices."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from creditledger.services.context import Context
from tests.e2e.test_web import billing, csrf_of, web_sign_in
from tests.helpers import sign_up

NOBODY = "http://127.0.0.1:9/notices"
"""Nothing listens there: every try fails at once with "connection refused"."""
SECRET = re.compile(r"<code>(whsec_[A-Za-z0-9+/=]+)</code>")


def test_an_admin_sets_tests_rotates_and_stops_notices_on_the_page(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client, "ada")
    web_sign_in(client, ada)
    page = client.get(billing(ada.team_id)).text
    assert 'data-testid="notices"' in page and "Delivery log" not in page
    base = billing(ada.team_id)
    saved = client.post(
        f"{base}/notices",
        data={
            "url": NOBODY,
            "events": ["balance.low", "payment.failed"],
            "csrf_token": csrf_of(page),
        },
    )
    assert saved.status_code == 200
    first = SECRET.search(saved.text)
    assert first is not None
    webhook = client.get(f"/v1/teams/{ada.team_id}/notification-webhook", headers=ada.auth).json()
    assert webhook["url"] == NOBODY and webhook["events"] == ["balance.low", "payment.failed"]
    again = client.get(billing(ada.team_id)).text
    assert first.group(1) not in again  # shown once
    assert "Delivery log" in again

    tested = client.post(f"{base}/notices/test", data={"csrf_token": csrf_of(again)})
    assert tested.status_code == 200
    assert "Test notice not delivered" in tested.text and "connection refused" in tested.text
    assert 'data-testid="notice-row"' in tested.text

    rotated = client.post(f"{base}/notices/rotate-secret", data={"csrf_token": csrf_of(again)})
    second = SECRET.search(rotated.text)
    assert second is not None and second.group(1) != first.group(1)

    every = client.post(
        f"{base}/notices",
        data={"url": NOBODY, "csrf_token": csrf_of(again)},
        follow_redirects=False,
    )
    assert every.status_code == 422  # no event ticked: refused, and said why
    assert 'data-testid="notices-error"' in every.text and "`events`" in every.text

    stopped = client.post(
        f"{base}/notices/delete", data={"csrf_token": csrf_of(again)}, follow_redirects=False
    )
    assert stopped.status_code == 303 and stopped.headers["location"].endswith("#notices")
    gone = client.get(f"/v1/teams/{ada.team_id}/notification-webhook", headers=ada.auth)
    assert gone.status_code == 404


def test_an_unsafe_url_on_the_page_is_refused_with_the_reason(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client, "ada")
    web_sign_in(client, ada)
    page = client.get(billing(ada.team_id)).text
    answer = client.post(
        f"{billing(ada.team_id)}/notices",
        data={"url": "ftp://example.com/x", "events": ["balance.low"], "csrf_token": csrf_of(page)},
    )
    assert answer.status_code == 422
    assert 'data-testid="notices-error"' in answer.text and "ftp://example.com/x" in answer.text
