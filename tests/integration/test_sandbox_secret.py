"""No signing secret has a public default: without
``CREDITLEDGER_SANDBOX_WEBHOOK_SECRET`` the sandbox signs with a random secret made once
per database and kept there; the old published value is never accepted. On both
backends."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables as t
from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.db.secrets import StoredSecret, ensure_secret, random_secret
from creditledger.adapters.payments.delivery import HttpDelivery, signed_headers
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.bootstrap import build_context
from creditledger.entrypoints.api.app import create_app
from creditledger.services.context import Context
from tests.conftest import make_settings
from tests.helpers import error_code, sign_up
from tests.payments import ROUNDS, paid_intent, start_purchase, together

PUBLIC = "whsec_sandbox_local_development_only"


@pytest.fixture
def default_ctx(database_url: str, clock: FixedClock) -> Iterator[Context]:
    """A deployment that keeps the default: the sandbox, no secret configured."""
    context = build_context(make_settings(database_url), clock=clock)
    yield context
    context.uow.dispose()


def _secret_of(ctx: Context) -> str:
    assert isinstance(ctx.payments, SandboxProvider)
    return ctx.payments.webhook_secret


def test_without_a_configured_secret_one_is_made_per_database_and_kept(
    default_ctx: Context, database_url: str, clock: FixedClock
) -> None:
    secret = _secret_of(default_ctx)
    assert secret.startswith("whsec_sb_") and len(secret) >= 40 and secret != PUBLIC
    restarted = build_context(make_settings(database_url), clock=clock)
    try:
        assert _secret_of(restarted) == secret
    finally:
        restarted.uow.dispose()
    with default_ctx.uow(write=False) as uow:
        conn = uow.conn  # type: ignore[attr-defined]
        stored = conn.execute(sa.select(t.service_secrets.c.value)).scalars().all()
    assert stored == [secret]
    provider = default_ctx.payments
    assert isinstance(provider, SandboxProvider) and isinstance(provider.outbox, HttpDelivery)
    assert provider.outbox.secret() == secret  # its webhooks are signed with it too


def test_a_webhook_signed_with_the_old_public_secret_is_refused(default_ctx: Context) -> None:
    with TestClient(create_app(default_ctx)) as client:
        ada = sign_up(client)
        started = start_purchase(client, ada, "10.00").json()
        body = json.dumps(
            {
                "id": "evt_public",
                "type": "payment_intent.succeeded",
                "data": {"object": paid_intent(started["id"], ada.team_id, 1000)},
            }
        ).encode()
        now = time.time()  # what the signature check compares with
        forged = client.post(
            "/v1/webhooks/sandbox", content=body, headers=signed_headers(PUBLIC, body, now)
        )
        assert (forged.status_code, error_code(forged)) == (400, "invalid_signature")
        empty_key = client.post(
            "/v1/webhooks/sandbox", content=body, headers=signed_headers("", body, now)
        )
        assert (empty_key.status_code, error_code(empty_key)) == (400, "invalid_signature")
        shown = client.get(f"/v1/teams/{ada.team_id}/balance", headers=ada.auth).json()
        assert shown["available"]["prepaid"] == "0.00"
        genuine = client.post(
            "/v1/webhooks/sandbox",
            content=body,
            headers=signed_headers(_secret_of(default_ctx), body, now),
        )
        assert (genuine.status_code, genuine.json()["result"]) == (200, "granted")


def _each(starts: list[StoredSecret]) -> Callable[[int], str]:
    return lambda i: starts[i]()


def test_simultaneous_first_starts_agree_on_one_secret(database_url: str) -> None:
    """Eight processes starting at once on an empty table each make a candidate; all
    end up with the one that was stored first. Guard: INSERT … ON CONFLICT DO NOTHING,
    then read back. Seen to fail on PostgreSQL with a read-then-insert instead
    (``SELECT``; if nothing, plain ``INSERT``): UniqueViolation in the first round. On
    SQLite it passed even so: ``BEGIN IMMEDIATE`` serializes the writers there."""
    engines = [create_engine(database_url) for _ in range(8)]
    for engine in engines:
        # A first connection turns the copied SQLite file to WAL, which `creditledger
        # migrate` has done before any process starts; done one at a time here.
        with engine.connect():
            pass
    try:
        for round_ in range(ROUNDS):
            name = f"race_{round_}"
            starts = [StoredSecret(engine, name, random_secret) for engine in engines]
            secrets_seen, errors = together(8, _each(starts))
            assert errors == []
            assert len(set(secrets_seen)) == 1
            with engines[0].connect() as conn:
                count = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.service_secrets)
                    .where(t.service_secrets.c.name == name)
                ).scalar_one()
            assert count == 1
    finally:
        for engine in engines:
            engine.dispose()


def test_an_existing_secret_is_never_replaced(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            first = ensure_secret(conn, "kept", lambda: "whsec_first_value")
        with engine.begin() as conn:
            again = ensure_secret(conn, "kept", lambda: "whsec_other_value")
        assert first == again == "whsec_first_value"
    finally:
        engine.dispose()


@pytest.mark.parametrize("secret", [PUBLIC, "", "   "])
def test_the_public_or_an_empty_secret_is_refused_when_configured(
    database_url: str, secret: str
) -> None:
    with pytest.raises(ValueError, match="SANDBOX_WEBHOOK_SECRET"):
        make_settings(database_url, sandbox_webhook_secret=secret)
