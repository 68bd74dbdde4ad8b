"""Who may touch a team: the one-read check of reads gives every caller the same answer
as the full check, over the in-memory unit of work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from creditledger.domain.accounts import Principal, Role
from creditledger.domain.errors import CreditLedgerError
from creditledger.services.access import Need, check_team_access, check_team_read
from creditledger.services.ports import UnitOfWork
from tests.services.fakes import OPERATOR, SERVICE, world

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def outcome(check: Callable[[], None]) -> tuple[str, str] | None:
    """None when the check lets the caller through, else the error's code and message."""
    try:
        check()
    except CreditLedgerError as exc:
        return exc.code, exc.message
    return None


@pytest.mark.parametrize("need", list(Need))
def test_the_read_check_answers_every_caller_as_the_full_check(need: Need) -> None:
    w = world(NOW)
    admin, member, stranger = (w.user(f"{n}@example.com") for n in ("ada", "bob", "cy"))
    team = w.team((admin, Role.ADMIN), (member, Role.MEMBER))
    w.team((stranger, Role.ADMIN))
    callers: list[Principal] = [admin, member, stranger, OPERATOR, SERVICE]
    teams = [team, "team_" + "9" * 26, "not-a-team-id"]
    with w.ctx.uow(write=False) as uow:
        for caller in callers:
            for team_id in teams:

                def full(uow: UnitOfWork = uow, c: Principal = caller, t: str = team_id) -> None:
                    check_team_access(uow, c, t, need)

                def read(uow: UnitOfWork = uow, c: Principal = caller, t: str = team_id) -> None:
                    check_team_read(uow, c, t, need)

                assert outcome(read) == outcome(full), (caller.kind, team_id, need)
