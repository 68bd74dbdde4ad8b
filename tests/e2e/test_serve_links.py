"""`creditledger serve --port N`: the sandbox's checkout links point at the port the server
listens on, and a pending checkout survives a restart (SQLite; the sandbox's store is
tested on both backends in tests/integration/test_sandbox_sessions.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest

pytestmark = pytest.mark.slow  # two server starts

START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITLEDGER_")}
    env |= {
        "CREDITLEDGER_DATABASE_URL": f"sqlite:///{database}",
        "CREDITLEDGER_PASSWORD_TIME_COST": "1",
        "CREDITLEDGER_PASSWORD_MEMORY_KIB": "8",
        "CREDITLEDGER_RUN_JOBS_IN_PROCESS": "false",
    }
    return env


@contextmanager
def _serving(database: Path, port: int) -> Iterator[str]:
    """``creditledger serve --port`` on ``database``; its base URL while it runs."""
    process = subprocess.Popen(
        [sys.executable, "-m", "creditledger.entrypoints.cli", "serve", "--port", str(port)],
        env=_env(database),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_checkout_links_use_the_port_serve_listens_on_and_survive_a_restart(
    sqlite_template: Path, tmp_path: Path
) -> None:
    database = tmp_path / "serve.db"
    shutil.copy(sqlite_template, database)
    first_port, second_port = _free_port(), _free_port()
    with _serving(database, first_port) as base:
        signed_up = httpx.post(
            f"{base}/v1/signup",
            json={"email": "serve@example.com", "password": "a long passphrase", "team_name": "t"},
        )
        assert signed_up.status_code == 201, signed_up.text
        token, team = signed_up.json()["token"], signed_up.json()["team"]["id"]
        started = httpx.post(
            f"{base}/v1/teams/{team}/purchases",
            json={"amount": "10.00"},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
        )
        assert started.status_code == 201, started.text
        url = started.json()["checkout_url"]
        assert url.startswith(f"{base}/sandbox/checkout/cs_sb_")
        assert "$10.00" in httpx.get(url).text

    with _serving(database, second_port) as base:
        path = url.removeprefix(f"http://127.0.0.1:{first_port}")
        page = httpx.get(f"{base}{path}")
        assert page.status_code == 200 and "$10.00" in page.text and "<form" in page.text
