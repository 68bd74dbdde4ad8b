"""kill -9 of a real server in the middle of usage batches, then redelivery of every
batch (docs/quality.md "Faults"): no event is lost and none is charged twice, because each
batch commits as one transaction and a redelivered event is a duplicate.

Each seed picks its own kill points. The normal run tries a few seeds; ``make soak``
sets ``CREDITLEDGER_SOAK_SEEDS=50`` and runs fifty."""

from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from creditledger.adapters.db import tables
from creditledger.bootstrap import build_context
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.services.accounts import sign_up
from creditledger.services.prices import PriceInput, set_price_book
from creditledger.services.tokens import create_platform_token
from creditledger.services.verify import verify_ledger
from tests.conftest import make_settings
from tests.helpers import event, prepaid_grant, usage_violations

SOAK_SEEDS = int(os.environ.get("CREDITLEDGER_SOAK_SEEDS", "0"))
SEEDS = list(range(SOAK_SEEDS)) if SOAK_SEEDS else [20261124, 7]
BATCHES = 8
BATCH_SIZE = 1_000 if SOAK_SEEDS else 250
KILLS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _server(database_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = os.environ | {
        "CREDITLEDGER_DATABASE_URL": database_url,
        "CREDITLEDGER_RUN_JOBS_IN_PROCESS": "false",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "creditledger.entrypoints.api.main:app_factory",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, "the server exited on start"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _post(port: int, token: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/usage-events",
        data=orjson.dumps({"events": batch}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = orjson.loads(response.read())
        return answer


@pytest.mark.slow
@pytest.mark.soak
@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_mid_batches_then_redelivery_loses_nothing_and_charges_nothing_twice(
    database_url: str, seed: int
) -> None:
    ctx = build_context(make_settings(database_url))
    operator = Principal(TokenKind.OPERATOR, "tok_test_operator")
    set_price_book(ctx, operator, [PriceInput("serverless", "llama", None, "requests", "0.01", 1)])
    teams = [
        sign_up(ctx, f"t{i}@example.com", "correct horse battery", f"T{i}").team.id
        for i in range(3)
    ]
    prepaid_grant(ctx, teams[0], "25.00")
    token = create_platform_token(ctx, TokenKind.SERVICE, "gateway")
    ctx.uow.dispose()
    when = datetime.now(UTC) + timedelta(seconds=1)
    batches = [
        [
            event(teams[(b + i) % 3], f"b{b}-e{i}", when, requests=1 + (b * i) % 3)
            for i in range(BATCH_SIZE)
        ]
        for b in range(BATCHES)
    ]
    acknowledged: set[int] = set()
    port = _free_port()
    rng = random.Random(seed)

    for _ in range(KILLS):
        with _server(database_url, port) as server:
            pending = [b for b in range(BATCHES) if b not in acknowledged]
            acked_at: list[float] = []
            interrupted: list[bool] = []

            def deliver(
                pending: list[int] = pending,
                acked_at: list[float] = acked_at,
                interrupted: list[bool] = interrupted,
            ) -> None:
                for b in pending:
                    try:
                        _post(port, token, batches[b])
                    except (urllib.error.URLError, http.client.HTTPException, OSError):
                        # refused, reset or cut short (IncompleteRead): not received
                        interrupted.append(True)
                        return
                    acknowledged.add(b)
                    acked_at.append(time.monotonic())

            poster = threading.Thread(target=deliver)
            poster.start()
            # Once two batches of this run are acknowledged (the first one is slower: a
            # fresh server), somewhere inside the next one: before, during or after its
            # commit.
            while len(acked_at) < 2 and poster.is_alive():
                time.sleep(0.001)
            per_batch = acked_at[1] - acked_at[0] if len(acked_at) == 2 else 0.0
            time.sleep(rng.uniform(0, per_batch))
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
            poster.join(timeout=30)
            assert interrupted, "the kill landed after the last batch"

    with _server(database_url, port):
        answers = [_post(port, token, batch) for batch in batches]

    assert all(a["rejected"] == [] for a in answers)
    assert all(a["accepted"] + a["duplicates"] == BATCH_SIZE for a in answers)
    # A batch is one transaction: before a kill it was taken whole or not at all.
    assert all(a["accepted"] in (0, BATCH_SIZE) for a in answers)
    assert all(answers[b]["duplicates"] == BATCH_SIZE for b in acknowledged)
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(tables.usage_events.c.team_id, tables.usage_events.c.event_id)
        ).all()
    engine.dispose()
    sent = {(e["team_id"], e["id"]) for batch in batches for e in batch}
    assert len(stored) == len(sent) == BATCHES * BATCH_SIZE
    assert {(r.team_id, r.event_id) for r in stored} == sent
    assert usage_violations(database_url) == []
    ctx = build_context(make_settings(database_url))
    try:
        assert verify_ledger(ctx) == []
    finally:
        ctx.uow.dispose()


@pytest.mark.slow
def test_kill_9_during_200_concurrent_single_event_posts_loses_no_acknowledged_event(
    database_url: str,
) -> None:
    """Group commit: every POST answered 200 was stored by a commit before the answer, so
    a kill -9 right after the answers loses none of them; redelivery charges none twice."""
    ctx = build_context(make_settings(database_url))
    operator = Principal(TokenKind.OPERATOR, "tok_test_operator")
    set_price_book(ctx, operator, [PriceInput("serverless", "llama", None, "requests", "0.01", 1)])
    team = sign_up(ctx, "g@example.com", "correct horse battery", "G").team.id
    token = create_platform_token(ctx, TokenKind.SERVICE, "gateway")
    ctx.uow.dispose()
    when = datetime.now(UTC) + timedelta(seconds=1)
    singles = [[event(team, f"single-{n}", when, requests=1)] for n in range(200)]
    port = _free_port()
    acknowledged: set[int] = set()
    lock = threading.Lock()
    with _server(database_url, port) as server:

        def post(n: int) -> None:
            try:
                answer = _post(port, token, singles[n])
            except (OSError, http.client.HTTPException):  # cut off by the kill: unknown
                return
            if answer["accepted"] == 1:
                with lock:
                    acknowledged.add(n)

        posters = [threading.Thread(target=post, args=(n,)) for n in range(200)]
        for poster in posters:
            poster.start()
        while len(acknowledged) < 50:
            time.sleep(0.0005)
        os.kill(server.pid, signal.SIGKILL)  # while the rest are in flight
        server.wait(timeout=10)
        for poster in posters:
            poster.join(timeout=30)
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        stored = {r.event_id for r in conn.execute(sa.select(tables.usage_events.c.event_id)).all()}
    engine.dispose()
    assert {f"single-{n}" for n in acknowledged} <= stored  # 0 lost
    with _server(database_url, port):
        again = [_post(port, token, batch) for batch in singles]
    assert all(a["accepted"] + a["duplicates"] == 1 for a in again)
    assert all(again[n]["duplicates"] == 1 for n in acknowledged)
    assert usage_violations(database_url) == []
