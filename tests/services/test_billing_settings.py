"""Billing settings are the operators' alone, over the in-memory unit of work."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from creditledger.domain.accounts import BillingMode, Role
from creditledger.domain.audit import AuditAction
from creditledger.domain.errors import Forbidden, InvalidRequest
from creditledger.services.billing_settings import set_billing_settings
from tests.services.fakes import OPERATOR, SERVICE, world

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_a_team_admin_can_not_set_their_own_billing_mode_or_tier() -> None:
    w = world(NOW)
    admin = w.user("ada@example.com")
    team = w.team((admin, Role.ADMIN))

    with pytest.raises(Forbidden):
        set_billing_settings(
            w.ctx, admin, team, BillingMode.PAY_AS_YOU_GO, set_tier=True, tier_level=5
        )
    with pytest.raises(Forbidden):
        set_billing_settings(
            w.ctx, SERVICE, team, BillingMode.PAY_AS_YOU_GO, set_tier=False, tier_level=None
        )

    assert w.state.teams[team].billing_mode is BillingMode.PREPAID
    assert w.state.teams[team].tier_level_override is None
    assert w.state.audit == []


def test_an_operator_sets_them_and_the_change_is_audited_with_what_it_was() -> None:
    w = world(NOW)
    team = w.team((w.user("ada@example.com"), Role.ADMIN))

    result = set_billing_settings(
        w.ctx, OPERATOR, team, BillingMode.PAY_AS_YOU_GO, set_tier=True, tier_level=5
    )

    assert result.team.billing_mode is BillingMode.PAY_AS_YOU_GO
    assert result.tier.level == 5
    [event] = w.state.audit
    assert event.action == AuditAction.BILLING_SETTINGS_SET
    assert event.actor == OPERATOR.token_id
    assert event.team_id == team
    assert event.detail["was_billing_mode"] == "prepaid"
    assert event.detail["tier_level_override"] == 5


def test_a_tier_level_outside_the_table_is_refused_before_any_read() -> None:
    w = world(NOW)
    team = w.team((w.user("ada@example.com"), Role.ADMIN))

    with pytest.raises(InvalidRequest):
        set_billing_settings(w.ctx, OPERATOR, team, None, set_tier=True, tier_level=9)

    assert w.uow.opened == 0
