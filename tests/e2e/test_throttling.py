"""Brute force is throttled (docs/quality.md): login per account and
per client address, sign-up per address, promo code guessing per team, per user and per
address. Every refusal is 429 `too_many_attempts` with `Retry-After`."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.bootstrap import build_context
from creditledger.config import Settings
from creditledger.entrypoints.api.app import create_app
from creditledger.services.context import Context
from creditledger.services.ports import PasswordHasher
from tests.conftest import make_settings
from tests.helpers import PASSWORD, Account, bearer, error_code, operator_token, sign_up

ELSEWHERE = ("198.51.100.20", 40000)
_names = itertools.count(1)


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/v1/login", json={"email": email, "password": password})


def throttled(response: Any, longest_wait: int) -> None:
    assert (response.status_code, error_code(response)) == (429, "too_many_attempts")
    assert 1 <= int(response.headers["Retry-After"]) <= longest_wait
    assert "try again in" in response.json()["error"]["message"].lower()


def other_client(client: TestClient) -> TestClient:
    """The same app, reached from another address."""
    return TestClient(client.app, client=ELSEWHERE, raise_server_exceptions=False)


@dataclass
class CountingHasher:
    """The real hasher, counting how often a password is checked."""

    inner: PasswordHasher
    checks: int = 0

    def hash(self, password: str) -> str:
        return self.inner.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        self.checks += 1
        return self.inner.verify(password_hash, password)


# --- login, per account ------------------------------------------------------------------


def test_the_right_password_is_refused_once_an_account_had_too_many_wrong_ones(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    budget = ctx.settings.login_failures_per_account
    for n in range(budget):
        assert log_in(client, ada.email, f"wrong password {n}").status_code == 401
    throttled(log_in(client, ada.email), ctx.settings.login_window_seconds)
    # From anywhere: the account's budget is the account's.
    throttled(log_in(other_client(client), ada.email), ctx.settings.login_window_seconds)


def test_a_throttled_login_is_refused_before_any_password_is_checked(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    hasher = CountingHasher(ctx.passwords)
    counted = TestClient(create_app(replace(ctx, passwords=hasher)))
    for _ in range(ctx.settings.login_failures_per_account):
        assert log_in(counted, ada.email, "wrong password!").status_code == 401
    checks = hasher.checks
    for _ in range(3):
        assert error_code(log_in(counted, ada.email)) == "too_many_attempts"
    assert hasher.checks == checks


def test_an_unknown_email_is_throttled_with_the_same_answer_as_a_known_one(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    for email in (ada.email, "nobody@example.com"):
        for _ in range(ctx.settings.login_failures_per_account):
            assert error_code(log_in(client, email, "wrong password!")) == "invalid_credentials"
    known, unknown = log_in(client, ada.email), log_in(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 429
    assert known.json() == unknown.json()


def test_successful_logins_do_not_count_as_failures(client: TestClient, ctx: Context) -> None:
    ada = sign_up(client)
    budget = ctx.settings.login_failures_per_account
    for _ in range(budget - 1):
        assert log_in(client, ada.email, "wrong password!").status_code == 401
    for _ in range(5):
        assert log_in(client, ada.email).status_code == 200
    assert error_code(log_in(client, ada.email, "wrong password!")) == "invalid_credentials"
    assert error_code(log_in(client, ada.email)) == "too_many_attempts"


def test_the_account_is_counted_by_its_email_in_normal_form(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    spellings = [ada.email, ada.email.upper(), f"  {ada.email}  ", ada.email.capitalize()]
    for n in range(ctx.settings.login_failures_per_account):
        assert log_in(client, spellings[n % 4], "wrong password!").status_code == 401
    assert error_code(log_in(client, ada.email)) == "too_many_attempts"


# --- login, per client address -------------------------------------------------------------


def test_failed_logins_from_one_address_are_throttled_across_accounts(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    per_account = ctx.settings.login_failures_per_account - 1
    for n in range(ctx.settings.login_failures_per_address):
        email = f"guess{n // per_account}@example.com"
        assert log_in(client, email, "wrong password!").status_code == 401
    throttled(log_in(client, ada.email), ctx.settings.login_window_seconds)
    assert log_in(other_client(client), ada.email).status_code == 200


# --- sign-up, per client address -------------------------------------------------------------


@pytest.fixture
def default_client(
    database_url: str, clock: FixedClock, sandbox: SandboxProvider
) -> Iterator[tuple[TestClient, Settings]]:
    """A client of an app with the default sign-up budget (the shared fixture raises it)."""
    default = Settings.model_fields["signups_per_address"].default
    settings = make_settings(database_url, signups_per_address=default)
    context = build_context(settings, clock=clock, payments=sandbox)
    with TestClient(create_app(context), raise_server_exceptions=False) as test_client:
        yield test_client, settings
    assert list(context.invariants.violations()) == []
    context.uow.dispose()


def test_sign_ups_from_one_address_are_throttled(
    default_client: tuple[TestClient, Settings],
) -> None:
    client, settings = default_client
    first = sign_up(client)
    # An attempt for an email that is taken counts too: it is how emails are probed.
    taken = client.post(
        "/v1/signup", json={"email": first.email, "password": PASSWORD, "team_name": "T"}
    )
    assert error_code(taken) == "email_taken"
    for _ in range(settings.signups_per_address - 2):
        sign_up(client)
    refused = client.post(
        "/v1/signup",
        json={"email": "one-more@example.com", "password": PASSWORD, "team_name": "T"},
    )
    throttled(refused, settings.signup_window_seconds)
    assert "sign-ups" in refused.json()["error"]["message"]
    assert log_in(client, "one-more@example.com").status_code == 401  # nobody was made
    sign_up(other_client(client))


# --- promo codes, per user and per address ---------------------------------------------------


def guess(client: TestClient, who: Account, team_id: str) -> Any:
    return client.post(
        f"/v1/teams/{team_id}/promo-codes/redeem",
        json={"code": f"GUESS-{next(_names)}"},
        headers=who.auth,
    )


def new_team(client: TestClient, who: Account) -> str:
    response = client.post("/v1/teams", json={"name": "Another"}, headers=who.auth)
    assert response.status_code == 201, response.text
    team_id: str = response.json()["id"]
    return team_id


def test_new_teams_do_not_buy_a_user_fresh_promo_code_guesses(
    client: TestClient, ctx: Context
) -> None:
    ada = sign_up(client)
    settings = ctx.settings
    team, failures = ada.team_id, 0
    while failures < settings.promo_failures_per_user:
        response = guess(client, ada, team)
        if error_code(response) == "too_many_attempts":
            assert "Your team has" in response.json()["error"]["message"]
            team = new_team(client, ada)
            continue
        assert error_code(response) == "promo_code_invalid"
        failures += 1
    refused = guess(client, ada, new_team(client, ada))
    throttled(refused, 3600)
    assert refused.json()["error"]["message"].startswith(
        f"You have entered {settings.promo_failures_per_user} promo codes"
    )
    # A code that works is refused too, and gives nothing.
    op = bearer(operator_token(ctx))
    created = client.post(
        "/v1/promo-codes",
        json={"code": "REAL-ONE", "amount": "5.00", "max_redemptions": 5},
        headers=op,
    )
    assert created.status_code == 201
    fresh = new_team(client, ada)
    redeemed = client.post(
        f"/v1/teams/{fresh}/promo-codes/redeem", json={"code": "REAL-ONE"}, headers=ada.auth
    )
    assert error_code(redeemed) == "too_many_attempts"
    # Someone else is not affected.
    bea = sign_up(client, "bea")
    assert error_code(guess(client, bea, bea.team_id)) == "promo_code_invalid"


def test_new_accounts_do_not_buy_an_address_fresh_promo_code_guesses(
    client: TestClient, ctx: Context
) -> None:
    settings = ctx.settings
    failures = 0
    while failures < settings.promo_failures_per_address:
        guesser = sign_up(client, "guesser")
        for _ in range(
            min(settings.promo_failures_per_team, settings.promo_failures_per_address - failures)
        ):
            assert error_code(guess(client, guesser, guesser.team_id)) == "promo_code_invalid"
            failures += 1
    newcomer = sign_up(client, "newcomer")
    refused = guess(client, newcomer, newcomer.team_id)
    throttled(refused, 3600)
    assert refused.json()["error"]["message"].startswith("Your network has")
    elsewhere = other_client(client)
    far = sign_up(elsewhere, "far")
    assert error_code(guess(elsewhere, far, far.team_id)) == "promo_code_invalid"
