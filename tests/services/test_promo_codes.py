"""Promo code redemption refusals, in the order of refusals, over the in-memory unit of work."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from creditledger.domain.accounts import Principal, Role
from creditledger.domain.errors import (
    Forbidden,
    PromoCodeAlreadyRedeemed,
    PromoCodeExpired,
    PromoCodeInvalid,
    PromoCodeLimitReached,
    PromoCodeRefused,
    TooManyAttempts,
)
from creditledger.domain.promo_codes import PromoCode
from creditledger.services.promo_codes import (
    NewPromoCodes,
    create_promo_codes,
    redeem_promo_code,
    set_promo_code_disabled,
)
from tests.services.fakes import OPERATOR, World, world

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def code(
    w: World,
    *,
    max_redemptions: int = 10,
    valid_from: datetime | None = None,
    redeem_by: datetime | None = None,
) -> PromoCode:
    """The code ``WELCOME-2026`` for $5.00, made by an operator."""
    new = NewPromoCodes(
        code="WELCOME-2026",
        amount="5.00",
        max_redemptions=max_redemptions,
        valid_from=valid_from,
        redeem_by=redeem_by,
    )
    [made] = create_promo_codes(w.ctx, OPERATOR, new)
    return made


def admin_of_a_team(w: World, email: str = "ada@example.com") -> tuple[Principal, str]:
    admin = w.user(email)
    return admin, w.team((admin, Role.ADMIN))


def redeemed(w: World, promo: PromoCode, team: str) -> None:
    """As if this team had redeemed it earlier (the redemption row and the count)."""
    w.state.redemptions.add((promo.id, team))
    stored = w.state.promo_codes[promo.id]
    w.state.promo_codes[promo.id] = replace(stored, redemptions=stored.redemptions + 1)


def test_an_unknown_code_is_invalid() -> None:
    w = world(NOW)
    admin, team = admin_of_a_team(w)
    code(w)

    with pytest.raises(PromoCodeInvalid):
        redeem_promo_code(w.ctx, admin, team, "WELCOME-2027")


def test_a_disabled_code_is_invalid_and_counts_no_redemption() -> None:
    w = world(NOW)
    admin, team = admin_of_a_team(w)
    promo = code(w)
    set_promo_code_disabled(w.ctx, OPERATOR, promo.id, True)

    with pytest.raises(PromoCodeInvalid):
        redeem_promo_code(w.ctx, admin, team, "welcome 2026")

    assert w.state.promo_codes[promo.id].redemptions == 0


def test_a_code_not_yet_valid_is_invalid_rather_than_expired() -> None:
    w = world(NOW)
    admin, team = admin_of_a_team(w)
    code(w, valid_from=NOW + timedelta(days=1), redeem_by=NOW + timedelta(days=2))

    with pytest.raises(PromoCodeInvalid):
        redeem_promo_code(w.ctx, admin, team, "WELCOME-2026")


def test_expired_comes_before_already_redeemed() -> None:
    w = world(NOW)
    admin, team = admin_of_a_team(w)
    promo = code(w, redeem_by=NOW + timedelta(days=1))
    redeemed(w, promo, team)
    w.clock.advance(timedelta(days=1))

    with pytest.raises(PromoCodeExpired):
        redeem_promo_code(w.ctx, admin, team, "WELCOME-2026")


def test_already_redeemed_comes_before_the_limit_reached() -> None:
    w = world(NOW)
    admin, team = admin_of_a_team(w)
    promo = code(w, max_redemptions=1)
    redeemed(w, promo, team)

    with pytest.raises(PromoCodeAlreadyRedeemed):
        redeem_promo_code(w.ctx, admin, team, "WELCOME-2026")


def test_another_team_is_told_the_limit_is_reached() -> None:
    w = world(NOW)
    _, first = admin_of_a_team(w)
    other, second = admin_of_a_team(w, "bob@example.com")
    promo = code(w, max_redemptions=1)
    redeemed(w, promo, first)

    with pytest.raises(PromoCodeLimitReached):
        redeem_promo_code(w.ctx, other, second, "WELCOME-2026")

    assert w.state.promo_codes[promo.id].redemptions == 1


def test_a_member_who_is_not_admin_can_not_redeem_and_spends_no_attempt() -> None:
    w = world(NOW, promo_failures_per_team=1)
    admin = w.user("ada@example.com")
    member = w.user("bob@example.com")
    team = w.team((admin, Role.ADMIN), (member, Role.MEMBER))

    with pytest.raises(Forbidden):
        redeem_promo_code(w.ctx, member, team, "WELCOME-2026")
    with pytest.raises(PromoCodeInvalid):
        redeem_promo_code(w.ctx, admin, team, "WELCOME-2026")


def test_after_the_teams_refusals_run_out_the_next_attempt_is_throttled() -> None:
    w = world(NOW, promo_failures_per_team=3, promo_failures_per_user=100)
    admin, team = admin_of_a_team(w)

    for _ in range(3):
        with pytest.raises(PromoCodeRefused):
            redeem_promo_code(w.ctx, admin, team, "GUESS-0000")
    with pytest.raises(TooManyAttempts):
        redeem_promo_code(w.ctx, admin, team, "GUESS-0000")
    other = w.team((admin, Role.ADMIN))
    with pytest.raises(PromoCodeInvalid):
        redeem_promo_code(w.ctx, admin, other, "GUESS-0000")
