"""Team membership rules of the accounts service, over the in-memory unit of work."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from creditledger.domain.accounts import Role
from creditledger.domain.errors import Forbidden, LastAdmin
from creditledger.services.accounts import change_role, remove_member
from tests.services.fakes import OPERATOR, world

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_the_only_admin_can_not_step_down_to_member() -> None:
    w = world(NOW)
    admin = w.user("ada@example.com")
    team = w.team((admin, Role.ADMIN))
    assert admin.user_id is not None

    with pytest.raises(LastAdmin):
        change_role(w.ctx, admin, team, admin.user_id, Role.MEMBER)

    assert w.state.members[(team, admin.user_id)][0] is Role.ADMIN


def test_the_only_admin_can_not_be_removed() -> None:
    w = world(NOW)
    admin = w.user("ada@example.com")
    member = w.user("bob@example.com")
    team = w.team((admin, Role.ADMIN), (member, Role.MEMBER))
    assert admin.user_id is not None

    with pytest.raises(LastAdmin):
        remove_member(w.ctx, admin, team, admin.user_id)

    assert (team, admin.user_id) in w.state.members


def test_an_admin_may_step_down_once_another_admin_remains() -> None:
    w = world(NOW)
    ada, bob = w.user("ada@example.com"), w.user("bob@example.com")
    team = w.team((ada, Role.ADMIN), (bob, Role.ADMIN))
    assert ada.user_id is not None and bob.user_id is not None

    changed = change_role(w.ctx, ada, team, ada.user_id, Role.MEMBER)

    assert changed.role is Role.MEMBER
    assert w.state.members[(team, ada.user_id)][0] is Role.MEMBER
    with pytest.raises(LastAdmin):
        remove_member(w.ctx, bob, team, bob.user_id)


def test_members_and_operators_can_not_change_roles() -> None:
    w = world(NOW)
    admin, member = w.user("ada@example.com"), w.user("bob@example.com")
    team = w.team((admin, Role.ADMIN), (member, Role.MEMBER))
    assert member.user_id is not None

    with pytest.raises(Forbidden):
        change_role(w.ctx, member, team, member.user_id, Role.ADMIN)
    with pytest.raises(Forbidden):
        change_role(w.ctx, OPERATOR, team, member.user_id, Role.ADMIN)
    assert w.state.members[(team, member.user_id)][0] is Role.MEMBER
