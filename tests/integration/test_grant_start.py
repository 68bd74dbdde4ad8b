"""A grant without a chosen start is usable from the start of the second it was made in:
the platform reports usage to the second, so credit granted at 12:00:00.700
pays for a request stamped 12:00:00. The rule lives in ``domain.grants`` and every
grant source takes it: sign-up, promo codes, operator grants, purchases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.domain.grants import default_effective_at
from creditledger.services.context import Context
from tests.conftest import START
from tests.helpers import Account, Platform, bearer, event, nanos, price, sign_up
from tests.payments import buy

LATE_IN_THE_SECOND = START + timedelta(milliseconds=700)


def _platform(client: TestClient, ctx: Context) -> Platform:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "requests", "0.01"))
    return platform


def _credits(client: TestClient, account: Account) -> list[dict[str, Any]]:
    response = client.get(f"/v1/teams/{account.team_id}/credits", headers=account.auth)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def _charge_a_request_at_the_start_of_the_second(platform: Platform, team_id: str) -> None:
    answer = platform.usage(event(team_id, "req-1", START, requests=1))
    assert answer["accepted"] == 1, answer


def test_the_default_start_of_a_grant_is_the_start_of_its_second() -> None:
    assert default_effective_at(LATE_IN_THE_SECOND) == START
    assert default_effective_at(START) == START


def test_sign_up_credit_pays_for_usage_stamped_earlier_in_the_same_second(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    clock.at = LATE_IN_THE_SECOND
    ada = sign_up(client)

    _charge_a_request_at_the_start_of_the_second(platform, ada.team_id)

    [signup] = _credits(client, ada)
    assert signup["source"] == "signup"
    assert signup["effective_at"] == "2026-11-24T12:00:00Z"
    assert signup["created_at"] == "2026-11-24T12:00:00.700000Z"
    assert signup["remaining"] == "2.99"
    assert platform.unpaid(ada.team_id) == 0


def test_an_operator_grant_without_a_start_covers_its_whole_second(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    team = platform.team()
    clock.at = LATE_IN_THE_SECOND
    grant_id = platform.promo(team.team_id, "1.00")

    _charge_a_request_at_the_start_of_the_second(platform, team.team_id)

    assert platform.remaining(team.team_id) == {grant_id: nanos("0.99")}
    assert platform.unpaid(team.team_id) == 0


def test_an_operator_grant_keeps_the_start_it_was_given(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    team = platform.team()
    clock.at = LATE_IN_THE_SECOND
    platform.promo(team.team_id, "1.00", effective_at=LATE_IN_THE_SECOND)

    _charge_a_request_at_the_start_of_the_second(platform, team.team_id)

    [grant] = _credits(client, team)
    assert grant["effective_at"] == "2026-11-24T12:00:00.700000Z"
    assert grant["remaining"] == "1.00"
    assert platform.unpaid(team.team_id) == nanos("0.01")


def test_a_redeemed_promo_code_covers_its_whole_second(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    team = platform.team()
    created = client.post(
        "/v1/promo-codes",
        json={"code": "SAME-SECOND", "amount": "1.00", "max_redemptions": 1},
        headers=bearer(platform.operator),
    )
    assert created.status_code == 201, created.text
    clock.at = LATE_IN_THE_SECOND
    redeemed = client.post(
        f"/v1/teams/{team.team_id}/promo-codes/redeem",
        json={"code": "same-second"},
        headers=team.auth,
    )
    assert redeemed.status_code == 201, redeemed.text
    assert redeemed.json()["effective_at"] == "2026-11-24T12:00:00Z"

    _charge_a_request_at_the_start_of_the_second(platform, team.team_id)

    assert platform.remaining(team.team_id) == {redeemed.json()["id"]: nanos("0.99")}
    assert platform.unpaid(team.team_id) == 0


def test_purchased_credit_covers_its_whole_second(
    client: TestClient, ctx: Context, clock: FixedClock, sandbox: SandboxProvider
) -> None:
    platform = _platform(client, ctx)
    team = platform.team()
    clock.at = LATE_IN_THE_SECOND
    purchase = buy(client, sandbox, team, "10.00")
    assert purchase["status"] == "succeeded", purchase

    _charge_a_request_at_the_start_of_the_second(platform, team.team_id)

    [prepaid] = _credits(client, team)
    assert (prepaid["source"], prepaid["effective_at"]) == ("purchase", "2026-11-24T12:00:00Z")
    assert prepaid["remaining"] == "9.99"
    assert platform.unpaid(team.team_id) == 0


def test_usage_from_the_second_before_a_grant_is_not_covered_by_it(
    client: TestClient, ctx: Context, clock: FixedClock
) -> None:
    platform = _platform(client, ctx)
    clock.at = LATE_IN_THE_SECOND
    ada = sign_up(client)

    answer = platform.usage(
        event(ada.team_id, "req-0", START - timedelta(microseconds=1), requests=1)
    )

    assert answer["accepted"] == 1, answer
    assert platform.unpaid(ada.team_id) == nanos("0.01")
