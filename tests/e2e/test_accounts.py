"""Sign-up, login, teams and members over HTTP (docs/api.md, Accounts and teams)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.entrypoints.api.app import create_app
from creditledger.services.context import Context
from creditledger.services.ports import PasswordHasher
from tests.helpers import (
    PASSWORD,
    Account,
    bearer,
    error_code,
    operator_token,
    service_token,
    sign_up,
)


def add_member(client: TestClient, admin: Account, who: Account, role: str = "member") -> str:
    response = client.post(
        f"/v1/teams/{admin.team_id}/members",
        headers=admin.auth,
        json={"email": who.email, "role": role},
    )
    assert response.status_code == 201, response.text
    user_id: str = response.json()["user_id"]
    return user_id


def test_signup_creates_the_user_their_team_and_a_working_token(client: TestClient) -> None:
    response = client.post(
        "/v1/signup",
        json={"email": "Grace@Example.com", "password": PASSWORD, "team_name": "Navy"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["email"] == "grace@example.com"
    assert body["user"]["id"].startswith("user_")
    assert body["team"]["id"].startswith("team_")
    assert body["team"]["name"] == "Navy"
    team = client.get(f"/v1/teams/{body['team']['id']}", headers=bearer(body["token"]))
    assert team.json() == {"id": body["team"]["id"], "name": "Navy", "role": "admin"}


def test_an_email_signs_up_once_whatever_its_case(client: TestClient) -> None:
    ada = sign_up(client)
    again = client.post(
        "/v1/signup",
        json={"email": ada.email.upper(), "password": PASSWORD, "team_name": "Twice"},
    )
    assert (again.status_code, error_code(again)) == (409, "email_taken")


def test_signup_refuses_a_bad_email_or_short_password_naming_the_field(client: TestClient) -> None:
    bad_email = client.post(
        "/v1/signup", json={"email": "not-an-email", "password": PASSWORD, "team_name": "T"}
    )
    assert (bad_email.status_code, bad_email.json()["error"]["param"]) == (422, "email")
    short = client.post(
        "/v1/signup", json={"email": "x@example.com", "password": "short", "team_name": "T"}
    )
    assert (short.status_code, short.json()["error"]["param"]) == (422, "password")


def test_login_gives_a_new_token_for_the_right_password(client: TestClient) -> None:
    ada = sign_up(client)
    response = client.post("/v1/login", json={"email": ada.email, "password": PASSWORD})
    assert response.status_code == 200
    token = response.json()["token"]
    assert token != ada.token
    assert client.get(f"/v1/teams/{ada.team_id}", headers=bearer(token)).status_code == 200


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(client: TestClient) -> None:
    ada = sign_up(client)
    wrong = client.post("/v1/login", json={"email": ada.email, "password": "wrong password!"})
    unknown = client.post("/v1/login", json={"email": "nobody@example.com", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert error_code(wrong) == "invalid_credentials"


def test_a_new_team_makes_the_caller_admin_and_has_no_signup_credit(client: TestClient) -> None:
    ada = sign_up(client)
    created = client.post("/v1/teams", headers=ada.auth, json={"name": "  Research  "})
    assert created.status_code == 201
    team = created.json()
    assert team["name"] == "Research"
    assert set(team) == {"id", "name"}
    assert client.get(f"/v1/teams/{team['id']}", headers=ada.auth).json()["role"] == "admin"
    balance = client.get(f"/v1/teams/{team['id']}/balance", headers=ada.auth).json()
    assert balance["available"]["total"] == "0.00"
    credits = client.get(f"/v1/teams/{team['id']}/credits", headers=ada.auth).json()
    assert credits == {"data": [], "next_cursor": None}


def test_an_admin_adds_a_member_who_then_sees_the_team_and_their_role(client: TestClient) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    response = client.post(
        f"/v1/teams/{ada.team_id}/members", headers=ada.auth, json={"email": bob.email}
    )
    assert response.status_code == 201
    assert response.json()["user_id"] == bob.user_id
    assert response.json()["role"] == "member"
    assert response.json()["email"] == bob.email
    seen = client.get(f"/v1/teams/{ada.team_id}", headers=bob.auth).json()
    assert seen == {"id": ada.team_id, "name": "ada's team", "role": "member"}


def test_adding_someone_twice_is_a_conflict(client: TestClient) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    add_member(client, ada, bob)
    again = client.post(
        f"/v1/teams/{ada.team_id}/members", headers=ada.auth, json={"email": bob.email}
    )
    assert (again.status_code, error_code(again)) == (409, "already_member")


def test_adding_an_unknown_email_says_to_sign_up_first(client: TestClient) -> None:
    ada = sign_up(client)
    response = client.post(
        f"/v1/teams/{ada.team_id}/members", headers=ada.auth, json={"email": "ghost@example.com"}
    )
    assert (response.status_code, response.json()["error"]["param"]) == (404, "email")


def test_a_team_always_keeps_one_admin(client: TestClient) -> None:
    ada = sign_up(client)
    url = f"/v1/teams/{ada.team_id}/members/{ada.user_id}"
    demote = client.patch(url, headers=ada.auth, json={"role": "member"})
    leave = client.delete(url, headers=ada.auth)
    assert (demote.status_code, error_code(demote)) == (409, "last_admin")
    assert (leave.status_code, error_code(leave)) == (409, "last_admin")
    assert client.get(f"/v1/teams/{ada.team_id}", headers=ada.auth).json()["role"] == "admin"


def test_with_a_second_admin_the_first_may_step_down(client: TestClient) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    add_member(client, ada, bob, role="admin")
    demote = client.patch(
        f"/v1/teams/{ada.team_id}/members/{ada.user_id}", headers=ada.auth, json={"role": "member"}
    )
    assert demote.status_code == 200
    assert demote.json()["role"] == "member"


def test_a_demotion_takes_effect_on_the_very_next_request(client: TestClient) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    add_member(client, ada, bob, role="admin")
    balance_url = f"/v1/teams/{ada.team_id}/balance"
    assert client.get(balance_url, headers=bob.auth).status_code == 200
    client.patch(
        f"/v1/teams/{ada.team_id}/members/{bob.user_id}", headers=ada.auth, json={"role": "member"}
    )
    denied = client.get(balance_url, headers=bob.auth)
    assert (denied.status_code, error_code(denied)) == (403, "forbidden")


def test_a_removed_member_no_longer_sees_the_team(client: TestClient) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    add_member(client, ada, bob)
    removed = client.delete(f"/v1/teams/{ada.team_id}/members/{bob.user_id}", headers=ada.auth)
    assert removed.status_code == 204
    assert removed.content == b""
    after = client.get(f"/v1/teams/{ada.team_id}", headers=bob.auth)
    assert (after.status_code, error_code(after)) == (404, "not_found")


def test_changing_or_removing_someone_outside_the_team_is_not_found(client: TestClient) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    url = f"/v1/teams/{ada.team_id}/members/{bob.user_id}"
    assert client.patch(url, headers=ada.auth, json={"role": "admin"}).status_code == 404
    assert client.delete(url, headers=ada.auth).status_code == 404


def test_a_user_in_several_teams_has_a_role_in_each(client: TestClient) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    add_member(client, ada, bob)
    assert client.get(f"/v1/teams/{ada.team_id}", headers=bob.auth).json()["role"] == "member"
    assert client.get(f"/v1/teams/{bob.team_id}", headers=bob.auth).json()["role"] == "admin"


def test_an_operator_reads_a_team_without_a_role_in_it(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    response = client.get(f"/v1/teams/{ada.team_id}", headers=bearer(operator_token(ctx)))
    assert response.json() == {"id": ada.team_id, "name": "ada's team", "role": None}


# --- who am I, and who is in my team --------------------------------------------------------


def test_me_shows_the_user_and_every_team_with_their_role_oldest_first(
    client: TestClient, clock: FixedClock
) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    clock.advance(timedelta(minutes=1))
    second = client.post("/v1/teams", json={"name": "Second"}, headers=ada.auth).json()
    clock.advance(timedelta(minutes=1))
    add_member(client, bob, ada)
    me = client.get("/v1/me", headers=ada.auth)
    assert me.status_code == 200
    assert me.json() == {
        "user": {"id": ada.user_id, "email": ada.email},
        "teams": [
            {"id": ada.team_id, "name": "ada's team", "role": "admin"},
            {"id": second["id"], "name": "Second", "role": "admin"},
            {"id": bob.team_id, "name": "bob's team", "role": "member"},
        ],
    }


def test_me_follows_a_removal_on_the_very_next_request(client: TestClient) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    add_member(client, ada, bob)
    assert len(client.get("/v1/me", headers=bob.auth).json()["teams"]) == 2
    client.delete(f"/v1/teams/{ada.team_id}/members/{bob.user_id}", headers=ada.auth)
    teams = client.get("/v1/me", headers=bob.auth).json()["teams"]
    assert teams == [{"id": bob.team_id, "name": "bob's team", "role": "admin"}]


def test_me_is_for_users_only(client: TestClient, ctx: Context) -> None:
    assert client.get("/v1/me").status_code == 401
    for token in (operator_token(ctx), service_token(ctx)):
        response = client.get("/v1/me", headers=bearer(token))
        assert (response.status_code, error_code(response)) == (403, "forbidden")


def test_an_admin_lists_the_team_members_in_the_order_they_were_added(
    client: TestClient, clock: FixedClock
) -> None:
    ada, bob, cy = sign_up(client, "ada"), sign_up(client, "bob"), sign_up(client, "cy")
    clock.advance(timedelta(hours=1))
    add_member(client, ada, bob, role="admin")
    clock.advance(timedelta(hours=1))
    add_member(client, ada, cy)
    response = client.get(f"/v1/teams/{ada.team_id}/members", headers=ada.auth)
    assert response.status_code == 200
    assert response.json() == {
        "data": [
            {
                "user_id": ada.user_id,
                "email": ada.email,
                "role": "admin",
                "added_at": "2026-11-24T12:00:00Z",
            },
            {
                "user_id": bob.user_id,
                "email": bob.email,
                "role": "admin",
                "added_at": "2026-11-24T13:00:00Z",
            },
            {
                "user_id": cy.user_id,
                "email": cy.email,
                "role": "member",
                "added_at": "2026-11-24T14:00:00Z",
            },
        ],
        "next_cursor": None,
    }


def test_members_are_listed_in_pages_that_neither_skip_nor_repeat(client: TestClient) -> None:
    ada = sign_up(client, "ada")
    # All added in the same instant: the user id breaks the tie.
    added = {add_member(client, ada, sign_up(client, f"m{n}")) for n in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/v1/teams/{ada.team_id}/members", params=params, headers=ada.auth)
        assert page.status_code == 200, page.text
        assert len(page.json()["data"]) <= 2
        seen += [m["user_id"] for m in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6
    assert set(seen) == added | {ada.user_id}


def test_only_cursors_this_team_list_gave_out_are_taken(client: TestClient) -> None:
    ada, bob = sign_up(client, "ada"), sign_up(client, "bob")
    for n in range(2):
        add_member(client, ada, sign_up(client, f"m{n}"))
        add_member(client, bob, sign_up(client, f"n{n}"))
    add_member(client, ada, bob, role="admin")

    def first_cursor(team_id: str) -> str:
        page = client.get(
            f"/v1/teams/{team_id}/members", params={"limit": 1}, headers=bob.auth
        ).json()
        cursor: str = page["next_cursor"]
        return cursor

    ours, theirs = first_cursor(ada.team_id), first_cursor(bob.team_id)
    tampered = ours[:-2] + ("AA" if ours[-2:] != "AA" else "BB")
    for forged in ("forged", tampered, theirs):
        response = client.get(
            f"/v1/teams/{ada.team_id}/members", params={"cursor": forged}, headers=bob.auth
        )
        assert (response.status_code, error_code(response)) == (400, "invalid_cursor"), forged
    ok = client.get(f"/v1/teams/{ada.team_id}/members", params={"cursor": ours}, headers=bob.auth)
    assert ok.status_code == 200


def test_only_the_team_admins_list_its_members(client: TestClient, ctx: Context) -> None:
    ada, bob, eve = sign_up(client, "ada"), sign_up(client, "bob"), sign_up(client, "eve")
    add_member(client, ada, bob)
    url = f"/v1/teams/{ada.team_id}/members"
    assert client.get(url, headers=bob.auth).status_code == 403
    stranger = client.get(url, headers=eve.auth)
    missing = client.get("/v1/teams/team_00000000000000000000000000/members", headers=eve.auth)
    assert (stranger.status_code, stranger.json()) == (404, missing.json())
    assert client.get(url, headers=bearer(operator_token(ctx))).status_code == 403
    assert client.get(url).status_code == 401


class _CountingPasswords:
    """The context's hasher, counting the argon2 runs a login costs."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.runs = 0

    def hash(self, password: str) -> str:
        self.runs += 1
        return self.inner.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        self.runs += 1
        return self.inner.verify(password_hash, password)


def test_an_unknown_email_costs_one_password_check_as_a_known_one_does(ctx: Context) -> None:
    counting = _CountingPasswords(ctx.passwords)
    counted = dataclasses.replace(ctx, passwords=counting)
    with TestClient(create_app(counted), raise_server_exceptions=False) as client:
        account = sign_up(client)
        runs = []
        for email in (account.email, "nobody@example.com", "nobody-else@example.com"):
            before = counting.runs
            client.post("/v1/login", json={"email": email, "password": "wrong-password-1"})
            runs.append(counting.runs - before)
    # The first unknown email may make the stand-in hash once; after that, one check each.
    assert runs[0] == 1
    assert runs[2] == 1
