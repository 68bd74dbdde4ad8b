"""GET /v1/teams/{team_id}/credit-history in front of the framework: the plain requests are
answered by ``HistoryFastPath``, everything else by the documented route, and both answer
the same request the same way, errors included."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditledger.entrypoints.api import fast_history, schemas
from creditledger.entrypoints.api.fast_history import HistoryFastPath
from creditledger.services.context import Context
from tests.helpers import bearer, operator_grant, operator_token, service_token, sign_up


@pytest.fixture
def framework(client: TestClient) -> TestClient:
    """The same application without the fast path: what it hands requests on to."""
    layer = client.app.front  # type: ignore[attr-defined]
    while not isinstance(layer, HistoryFastPath):  # the layers in front of it, outermost first
        layer = layer.app
    return TestClient(layer.app, raise_server_exceptions=False)


@pytest.fixture
def answered_fast(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The pages the fast path rendered."""
    seen: list[bytes] = []
    render = schemas.history_page_json

    def spy(*args: Any) -> bytes:
        seen.append(render(*args))
        return seen[-1]

    monkeypatch.setattr(fast_history, "history_page_json", spy)
    return seen


@pytest.fixture
def callers(client: TestClient, ctx: Context) -> tuple[str, dict[str, dict[str, str]]]:
    """A team with a few entries, and every kind of caller's headers."""
    ada, stranger = sign_up(client), sign_up(client, "cy")
    bob = sign_up(client, "bob")
    added = client.post(
        f"/v1/teams/{ada.team_id}/members",
        headers=ada.auth,
        json={"email": bob.email, "role": "member"},
    )
    assert added.status_code == 201
    operator = operator_token(ctx)
    for amount in ("1.00", "2.00", "3.00", "4.00"):
        operator_grant(client, operator, ada.team_id, amount)
    return ada.team_id, {
        "admin": ada.auth,
        "member": bob.auth,
        "stranger": stranger.auth,
        "operator": bearer(operator),
        "service": bearer(service_token(ctx)),
        "unknown": bearer("clp_not-a-real-token"),
        "anonymous": {},
    }


def test_a_plain_page_is_answered_in_front_and_counted_in_the_metrics(
    client: TestClient,
    callers: tuple[str, dict[str, dict[str, str]]],
    answered_fast: list[bytes],
) -> None:
    team_id, headers = callers
    response = client.get(f"/v1/teams/{team_id}/credit-history?limit=2", headers=headers["admin"])
    assert response.status_code == 200
    assert answered_fast == [response.content]
    assert response.headers["content-type"] == "application/json"
    assert len(response.json()["data"]) == 2
    metrics = client.get("/metrics").text
    assert 'route="/v1/teams/{team_id}/credit-history",status="200"' in metrics


QUERIES = (
    "",
    "limit=2",
    "limit=1",
    "limit=500",
    "limit=0",
    "limit=501",
    "limit=02",
    "limit=two",
    "limit=2&limit=3",
    "cursor=bm90LWEtY3Vyc29y",
    "cursor=",
    "cursor=" + "A" * 201,
    "limit=2&",
    "type=grant",
    "kind=promotional&limit=2",
    "unknown=1",
    "limit=%32",
)


@pytest.mark.parametrize("query", QUERIES)
def test_every_caller_gets_the_routes_answer(
    client: TestClient,
    framework: TestClient,
    callers: tuple[str, dict[str, dict[str, str]]],
    query: str,
) -> None:
    team_id, headers = callers
    for who, auth in headers.items():
        for team in (team_id, "team_" + "9" * 26, "not-a-team"):
            url = f"/v1/teams/{team}/credit-history?{query}"
            ours, theirs = client.get(url, headers=auth), framework.get(url, headers=auth)
            assert (ours.status_code, ours.json()) == (theirs.status_code, theirs.json()), (
                who,
                url,
            )


def test_the_cursor_walks_the_same_pages_both_ways(
    client: TestClient,
    framework: TestClient,
    callers: tuple[str, dict[str, dict[str, str]]],
    answered_fast: list[bytes],
) -> None:
    team_id, headers = callers
    pages: list[Any] = []
    cursor = ""
    while True:
        url = f"/v1/teams/{team_id}/credit-history?limit=2" + (
            f"&cursor={cursor}" if cursor else ""
        )
        ours, theirs = (
            client.get(url, headers=headers["admin"]),
            framework.get(url, headers=headers["admin"]),
        )
        assert ours.json() == theirs.json()
        pages.append(ours.json())
        cursor = ours.json()["next_cursor"]
        if cursor is None:
            break
    assert len(pages) == 3  # 4 grants and the sign-up credit
    assert len(answered_fast) == 3


def scope(path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    auth = [(b"authorization", b"Bearer clp_token")] if headers is None else headers
    return {"method": "GET", "path": path, "query_string": query, "headers": auth}


TEAM_PAGE = "/v1/teams/team_1/credit-history"


@pytest.mark.parametrize(
    ("request_scope", "taken"),
    [
        (scope(TEAM_PAGE), ("clp_token", "team_1", 50, None)),
        (scope(TEAM_PAGE, b"limit=7&cursor=ab-_9"), ("clp_token", "team_1", 7, "ab-_9")),
        (
            scope(TEAM_PAGE, headers=[(b"authorization", b"bearer clp_token")]),
            ("clp_token", "team_1", 50, None),
        ),
        (scope(TEAM_PAGE, b"limit=0"), None),
        (scope(TEAM_PAGE, b"limit=501"), None),
        (scope(TEAM_PAGE, b"limit=07"), None),
        (scope(TEAM_PAGE, b"cursor=a%3D"), None),
        (scope(TEAM_PAGE, b"cursor=a&cursor=b"), None),
        (scope(TEAM_PAGE, b"since=2026-11-01T00:00:00Z"), None),
        (scope(TEAM_PAGE, b"limit=7&"), None),
        (scope(TEAM_PAGE, headers=[]), None),
        (scope(TEAM_PAGE, headers=[(b"authorization", b"Basic abc")]), None),
        (scope(TEAM_PAGE, headers=[(b"authorization", b"Bearer  two spaces")]), None),
        (
            scope(
                TEAM_PAGE,
                headers=[(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")],
            ),
            None,
        ),
        (scope("/v1/teams/team_1/credit-history.csv"), None),
        (scope("/v1/teams/team_1/credit-history/"), None),
        (scope("/v1/teams/a/b/credit-history"), None),
        (scope("/v1/teams//credit-history"), None),
        ({**scope(TEAM_PAGE), "method": "HEAD"}, None),
    ],
)
def test_only_plain_requests_are_taken(request_scope: Any, taken: Any) -> None:
    assert fast_history._plain_request(request_scope) == taken
