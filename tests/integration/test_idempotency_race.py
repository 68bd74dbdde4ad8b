"""Twenty simultaneous requests with one Idempotency-Key make exactly one grant.

How this test was seen to fail with the guard taken out (docs/quality.md, Concurrency),
on both backends, each edit restored afterwards:

- ``SqlIdempotency.claim`` made to ``return None`` before touching the table: with no
  claim row, ``complete`` found nothing to finish and every request rolled back with
  409, so the test failed with "0 grants for one key".
- ``complete`` also made to return True: all 20 requests ran the effect and the test
  failed with "20 grants for one key".
- ``claim`` inserting but returning None even on a conflict: the ``complete`` guard
  still let one grant through, but the replay after the race answered 409 instead of
  the stored 201, and the test failed there.

A passing round shows both kinds of answer: 201 (the first request, or a replay once
it had finished) and 409 ``request_in_progress``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.engine import create_engine
from creditledger.services.context import Context
from tests.helpers import bearer, error_code, operator_token, sign_up

THREADS = 20
ROUNDS = 20


def manual_grants(database_url: str, team_id: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.grants.c.id).where(
                    t.grants.c.team_id == team_id, t.grants.c.source == "manual"
                )
            )
            return {r.id for r in rows}
    finally:
        engine.dispose()


def test_simultaneous_requests_with_one_key_grant_once(
    client: TestClient, ctx: Context, database_url: str
) -> None:
    ada = sign_up(client)
    operator = bearer(operator_token(ctx))
    url = f"/v1/teams/{ada.team_id}/grants"
    body = {"amount": "7.00", "note": "Race"}
    seen: set[str] = set()
    with ThreadPoolExecutor(THREADS) as pool:
        for round_ in range(ROUNDS):
            headers = operator | {"Idempotency-Key": f"race-{round_}"}
            barrier = threading.Barrier(THREADS)

            def send(
                _: int, headers: dict[str, str] = headers, barrier: threading.Barrier = barrier
            ) -> tuple[int, Any]:
                barrier.wait()
                response = client.post(url, headers=headers, json=body)
                return response.status_code, response.json()

            answers = list(pool.map(send, range(THREADS)))

            made = manual_grants(database_url, ada.team_id) - seen
            assert len(made) == 1, f"round {round_}: {len(made)} grants for one key"
            seen |= made
            created = [b for s, b in answers if s == 201]
            assert created, f"round {round_}: no request got the grant"
            assert all(b == created[0] for b in created)
            assert created[0]["id"] in made
            for status, answer in answers:
                assert status in (201, 409), answer
                if status == 409:
                    assert answer["error"]["code"] == "request_in_progress"

            replay = client.post(url, headers=headers, json=body)
            assert (replay.status_code, replay.json()) == (201, created[0])

    other_body = client.post(url, headers=headers, json=body | {"amount": "8.00"})
    assert error_code(other_body) == "idempotency_key_reused"
