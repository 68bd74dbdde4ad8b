"""Simultaneous requests that must not both win (threads released by a barrier)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from creditledger.services.context import Context
from tests.helpers import PASSWORD, bearer, operator_grant, operator_token, sign_up

THREADS = 10


def all_at_once(call: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(THREADS)

    def one(_: int) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def test_simultaneous_signups_with_one_email_make_one_account(client: TestClient) -> None:
    body = {"email": "twin@example.com", "password": PASSWORD, "team_name": "Twins"}
    answers = all_at_once(lambda: client.post("/v1/signup", json=body))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 409: THREADS - 1}
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"email_taken"}


def test_simultaneous_voids_of_one_grant_write_it_off_once(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    op = operator_token(ctx)
    grant_id = operator_grant(client, op, ada.team_id, "4.00").json()["id"]
    url = f"/v1/teams/{ada.team_id}/grants/{grant_id}/void"
    answers = all_at_once(lambda: client.post(url, headers=bearer(op)))
    assert Counter(a.status_code for a in answers) == {200: 1, 409: THREADS - 1}
    voids = client.get(
        f"/v1/teams/{ada.team_id}/credit-history", headers=ada.auth, params={"type": "void"}
    ).json()["data"]
    assert [v["amount"] for v in voids] == ["-4.00"]
