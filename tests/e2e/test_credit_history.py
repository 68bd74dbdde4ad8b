"""Credit history over HTTP: newest first, paginated, filterable, exportable."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables
from creditledger.bootstrap import build_context
from creditledger.domain.money import dollars, parse_amount
from creditledger.entrypoints.api.app import create_app
from creditledger.entrypoints.api.schemas import HISTORY_COLUMNS
from creditledger.services import history as history_service
from creditledger.services.context import Context
from tests.conftest import make_settings
from tests.helpers import Account, bearer, operator_grant, operator_token, sign_up, spend


def signed_nanos(text: str) -> int:
    """``"-1.50"`` → -1_500_000_000: the API writes signed amounts in history."""
    sign = -1 if text.startswith("-") else 1
    return sign * parse_amount(text.removeprefix("-"), minimum=0)


def history(client: TestClient, who: Account, **params: Any) -> Any:
    response = client.get(
        f"/v1/teams/{who.team_id}/credit-history", headers=who.auth, params=params
    )
    assert response.status_code == 200, response.text
    return response.json()


def walk(client: TestClient, who: Account, limit: int, **params: Any) -> tuple[list[Any], int]:
    entries: list[Any] = []
    cursor = None
    pages = 0
    while True:
        page = history(client, who, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        pages += 1
        entries += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return entries, pages


@pytest.fixture
def busy_team(client: TestClient, ctx: Context, clock: FixedClock) -> Account:
    """Sign-up credit on day 0; a grant a day for 6 days; usage on day 7; a void on day 8."""
    ada = sign_up(client)
    op = operator_token(ctx)
    last = ""
    for n in range(6):
        clock.advance(timedelta(days=1))
        response = operator_grant(client, op, ada.team_id, f"{n + 1}.00")
        last = response.json()["id"]
    clock.advance(timedelta(days=1))
    spend(ctx, ada.team_id, dollars("4.00"))
    clock.advance(timedelta(days=1))
    void = client.post(f"/v1/teams/{ada.team_id}/grants/{last}/void", headers=bearer(op))
    assert void.status_code == 200
    return ada


def test_history_is_newest_first_with_the_balance_after_every_entry(
    client: TestClient, busy_team: Account
) -> None:
    entries = history(client, busy_team)["data"]
    assert [e["type"] for e in entries[:3]] == ["void", "usage", "usage"]
    assert entries[-1]["description"] == "Sign-up credit"
    times = [e["occurred_at"] for e in entries]
    assert times == sorted(times, reverse=True)
    # Each balance_after is the one before it plus the entry's own amount.
    running = 0
    for entry in reversed(entries):
        running += signed_nanos(entry["amount"])
        assert signed_nanos(entry["balance_after"]) == running
    balance = client.get(f"/v1/teams/{busy_team.team_id}/balance", headers=busy_team.auth).json()
    assert entries[0]["balance_after"] == balance["available"]["total"]


def test_an_entry_has_every_field_of_the_contract(client: TestClient, busy_team: Account) -> None:
    void = history(client, busy_team)["data"][0]
    assert set(void) == set(HISTORY_COLUMNS)
    assert void["type"] == "void"
    assert void["amount"] == "-6.00"
    assert void["kind"] == "promotional"
    assert void["reference"] == void["grant_id"]
    assert void["id"].startswith("entry_")


def test_the_cursor_pages_through_more_entries_than_the_limit_without_gaps(
    client: TestClient, busy_team: Account
) -> None:
    everything = history(client, busy_team, limit=500)["data"]
    assert len(everything) == 10  # sign-up, 6 grants, 2 usage draws, 1 void
    walked, pages = walk(client, busy_team, limit=3)
    assert walked == everything
    assert pages == 4
    assert len({e["id"] for e in walked}) == len(walked)


def test_the_default_page_is_fifty_entries(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    for _ in range(50):
        operator_grant(client, op, ada.team_id, "0.01")
    first = history(client, ada)
    assert len(first["data"]) == 50
    assert first["next_cursor"] is not None
    rest = history(client, ada, cursor=first["next_cursor"])
    assert len(rest["data"]) == 1
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "types"),
    [
        ({"type": "grant"}, {"grant"}),
        ({"type": "usage"}, {"usage"}),
        ({"type": "void"}, {"void"}),
        ({"type": "expiry"}, set()),
    ],
)
def test_the_type_filter_keeps_only_that_type(
    client: TestClient, busy_team: Account, params: dict[str, str], types: set[str]
) -> None:
    assert {e["type"] for e in history(client, busy_team, **params)["data"]} == types


def test_the_kind_filter_keeps_only_that_kind_of_credit(
    client: TestClient, busy_team: Account
) -> None:
    promotional = history(client, busy_team, kind="promotional")["data"]
    assert len(promotional) == 10
    assert {e["kind"] for e in promotional} == {"promotional"}
    assert history(client, busy_team, kind="prepaid")["data"] == []


def test_since_is_inclusive_and_until_exclusive(client: TestClient, busy_team: Account) -> None:
    day2, day4 = "2026-11-26T12:00:00Z", "2026-11-28T12:00:00Z"
    window = history(client, busy_team, since=day2, until=day4)["data"]
    assert [e["occurred_at"] for e in window] == ["2026-11-27T12:00:00Z", day2]
    assert all(e["occurred_at"] >= day2 for e in history(client, busy_team, since=day2)["data"])
    assert all(e["occurred_at"] < day4 for e in history(client, busy_team, until=day4)["data"])


def test_filters_and_the_cursor_work_together(client: TestClient, busy_team: Account) -> None:
    walked, pages = walk(client, busy_team, limit=2, type="grant")
    assert len(walked) == 7
    assert pages == 4
    assert {e["type"] for e in walked} == {"grant"}


def read_csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(response.text)))


def as_csv_row(entry: dict[str, Any]) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in entry.items()}


def test_the_csv_export_has_a_header_and_the_same_entries(
    client: TestClient, busy_team: Account
) -> None:
    response = client.get(
        f"/v1/teams/{busy_team.team_id}/credit-history.csv", headers=busy_team.auth
    )
    assert response.text.splitlines()[0] == ",".join(HISTORY_COLUMNS)
    rows = read_csv(response)
    assert rows == [as_csv_row(e) for e in history(client, busy_team, limit=500)["data"]]


def test_the_csv_export_takes_the_same_filters(client: TestClient, busy_team: Account) -> None:
    params = {"type": "usage", "since": "2026-11-01T00:00:00Z"}
    response = client.get(
        f"/v1/teams/{busy_team.team_id}/credit-history.csv", headers=busy_team.auth, params=params
    )
    rows = read_csv(response)
    assert len(rows) == 2
    assert rows == [as_csv_row(e) for e in history(client, busy_team, **params)["data"]]


def test_an_empty_csv_export_is_just_the_header(client: TestClient) -> None:
    ada = sign_up(client)
    response = client.get(
        f"/v1/teams/{ada.team_id}/credit-history.csv", headers=ada.auth, params={"type": "refund"}
    )
    assert response.text == ",".join(HISTORY_COLUMNS) + "\n"


def test_the_csv_export_reads_page_after_page_without_gaps(
    client: TestClient, busy_team: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_service, "EXPORT_PAGE", 3)
    response = client.get(
        f"/v1/teams/{busy_team.team_id}/credit-history.csv", headers=busy_team.auth
    )
    rows = read_csv(response)
    assert len(rows) == 10
    assert rows == [as_csv_row(e) for e in history(client, busy_team, limit=500)["data"]]


def revoke_every_token(ctx: Context) -> None:
    with ctx.uow() as uow:
        conn = uow.conn  # type: ignore[attr-defined]
        conn.execute(sa.update(tables.api_tokens).values(revoked_at=ctx.clock.now()))
        uow.commit()


def test_a_token_revoked_after_a_page_is_refused_on_the_next(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    history(client, ada)  # the caller is known from now on (in memory where it may be)
    revoke_every_token(ctx)
    response = client.get(f"/v1/teams/{ada.team_id}/credit-history", headers=ada.auth)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthenticated")


def test_with_pushed_changes_a_revoked_token_is_refused_within_moments(
    database_url: str, clock: FixedClock
) -> None:
    """With PostgreSQL's notices on, the page serves callers from memory; a revocation's
    notice clears it (on SQLite, any commit does)."""
    ctx = build_context(make_settings(database_url, push_changes=True), clock=clock)
    app = create_app(ctx)
    with TestClient(app, raise_server_exceptions=False) as client:
        ada = sign_up(client)
        history(client, ada)
        history(client, ada)
        assert app.state.authorizer.known_principal(ada.token, None) is not None
        revoke_every_token(ctx)
        began = time.monotonic()
        while True:
            response = client.get(f"/v1/teams/{ada.team_id}/credit-history", headers=ada.auth)
            if response.status_code == 401:
                break
            assert response.status_code == 200
            assert time.monotonic() - began < 2.0, "the revocation did not arrive"
            time.sleep(0.005)
    ctx.uow.dispose()
