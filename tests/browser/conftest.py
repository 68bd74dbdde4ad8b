"""A real server on a free port and Debian's Chromium driven by Playwright.

The server runs in this process (uvicorn in a thread) over the test's own context, so
a test can set data up through the services or the API and then look at it in the
browser; the sandbox's checkout links point at that server. Chromium is started once
per worker. Screenshots land in ``build/screenshots`` (not committed).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.payments.delivery import ManualOutbox
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.adapters.payments.sandbox_store import SqlSandboxStore
from creditledger.bootstrap import build_context
from creditledger.entrypoints.api.app import create_app
from creditledger.services.context import Context
from tests.conftest import SANDBOX_SECRET, START, make_settings

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
REQUIRE_BROWSER = os.environ.get("CREDITLEDGER_REQUIRE_BROWSER") == "1"
"""As in CI: a missing Chromium fails the browser tests instead of skipping them."""
PROMO_FAILURES_PER_TEAM = 4
"""Low, so the throttle shows after a few refusals."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Live:
    """The server under test: its address, context, clock and an API client."""

    base: str
    ctx: Context
    clock: FixedClock
    api: TestClient

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        message = f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def live(database_url: str) -> Iterator[Live]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    clock = FixedClock(START)
    engine = create_engine(database_url)
    sandbox = SandboxProvider(
        SANDBOX_SECRET, base, ManualOutbox(SANDBOX_SECRET), clock.now, store=SqlSandboxStore(engine)
    )
    settings = make_settings(
        database_url,
        public_url=base,
        promo_failures_per_team=PROMO_FAILURES_PER_TEAM,
        web_session_hours=72,
    )
    ctx = build_context(settings, clock=clock, payments=sandbox)
    app = create_app(ctx)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        assert time.monotonic() < deadline, "the server did not start in time"
        time.sleep(0.02)
    with TestClient(app, raise_server_exceptions=False) as api:
        yield Live(base, ctx, clock, api)
    server.should_exit = True
    thread.join(timeout=15)
    violations = list(ctx.invariants.violations())
    ctx.uow.dispose()
    engine.dispose()
    assert violations == [], "ledger invariants broken after the test"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    made.set_default_timeout(10_000)
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
