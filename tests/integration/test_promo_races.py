"""Promo code redemptions under a burst of simultaneous requests (docs/quality.md).

Each case runs 20 rounds on each backend, with a fresh code per round, on real threads
released together by a barrier and calling the service function, each on its own
connection. The ledger invariants (I5 among them) are checked after each test.

The guards, all in the transaction that issues the grant:

- the count: ``SqlPromoCodes.claim``, one ``UPDATE … SET redemptions_count =
  redemptions_count + 1 WHERE … AND redemptions_count < max_redemptions`` judged by its
  rowcount, backed by CHECK (redemptions_count <= max_redemptions);
- one per team: ``SqlPromoCodes.record_redemption``, an INSERT … ON CONFLICT DO NOTHING
  into ``promo_redemptions`` with UNIQUE (promo_code_id, team_id);
- the team row lock (``FOR UPDATE``; ``BEGIN IMMEDIATE`` on SQLite), which also makes
  the failed-attempt throttle exact for one team's burst.

How each test was seen to fail with its guard taken out (each change made by hand,
the three tests run on both backends, the change reverted):

A. ``redemptions_count < max_redemptions`` removed from ``claim``: the 11th and later
   claims hit the CHECK constraint, so the losers crashed with an IntegrityError instead
   of hearing ``promo_code_limit_reached`` (50 teams: 10 redeemed, 40 crashes; 30×3: 10
   redeemed, 79 crashes), on both backends, in the first round.
B. As A, and the CHECK left out of the migration: every request won. 50 redemptions of
   a code limited to 10, and 30 in the 30×3 test, on both backends; I5 reported them.
C. UNIQUE (promo_code_id, team_id) left out of the migration: the one team got 20 grants
   of one code, and in the 30×3 test some teams redeemed twice (14 and 17 "already
   redeemed" instead of 20), on both backends; I5 reported them.
D. The team lock alone removed (``lock=False``): the counts still held (the UPDATE and
   the UNIQUE constraint decide), but on PostgreSQL the one-team test failed on its
   throttle line: 1 redeemed and 19 already redeemed, no 429. The lock is what makes
   the failed-attempt count exact for a burst. (On SQLite, BEGIN IMMEDIATE serializes
   every writer anyway, and the test passed.)
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from creditledger.adapters.db import tables as t
from creditledger.adapters.ratelimit.limiter import LimitsRateLimiter
from creditledger.domain.accounts import Principal
from creditledger.domain.errors import CreditLedgerError
from creditledger.domain.promo_codes import MAX_FAILED_ATTEMPTS, PromoCode
from creditledger.services import accounts
from creditledger.services.access import system_operator
from creditledger.services.context import Context
from creditledger.services.promo_codes import (
    NewPromoCodes,
    create_promo_codes,
    get_promo_code,
    redeem_promo_code,
)
from creditledger.services.tokens import authenticate
from tests.helpers import PASSWORD

pytestmark = pytest.mark.slow

ROUNDS = 20
OPERATOR = system_operator("race-test")
REDEEMED = "redeemed"
_emails = itertools.count(1)


@dataclass(frozen=True)
class Admin:
    team_id: str
    principal: Principal


def admins(ctx: Context, count: int) -> list[Admin]:
    """``count`` teams, each with the admin who signed it up."""
    made = []
    for n in range(count):
        done = accounts.sign_up(ctx, f"racer{next(_emails)}@example.com", PASSWORD, f"Team {n}")
        made.append(Admin(done.team.id, authenticate(ctx, done.token)))
    return made


def fresh_code(ctx: Context, max_redemptions: int) -> PromoCode:
    new = NewPromoCodes(amount="1.00", max_redemptions=max_redemptions, count=1)
    (code,) = create_promo_codes(ctx, OPERATOR, new)
    return code


def race(ctx: Context, attempts: list[Admin], code: str) -> list[tuple[str, str]]:
    """Every admin of ``attempts`` redeems ``code`` at once: (team id, outcome) each."""
    barrier = threading.Barrier(len(attempts))
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def attempt(admin: Admin) -> None:
        barrier.wait(timeout=60)
        try:
            redeem_promo_code(ctx, admin.principal, admin.team_id, code)
            outcome = REDEEMED
        except CreditLedgerError as exc:
            outcome = exc.code
        except Exception as exc:  # a guard gave way: say how, do not hang the test
            outcome = f"crash: {type(exc).__name__}"
        with lock:
            outcomes.append((admin.team_id, outcome))

    threads = [threading.Thread(target=attempt, args=(a,)) for a in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(outcomes) == len(attempts), "a redemption never finished"
    return outcomes


@pytest.fixture
def rounds(ctx: Context) -> Iterator[int]:
    """The round numbers; the failed-attempt counters start empty in each round."""
    limiter = ctx.rate_limiter
    assert isinstance(limiter, LimitsRateLimiter)

    def each() -> Iterator[int]:
        for n in range(ROUNDS):
            limiter.clear()
            yield n

    return each()


def redemption_rows(ctx: Context, promo_id: str) -> list[str]:
    """The teams recorded as having redeemed the code."""
    with ctx.uow(write=False) as uow:
        conn: sa.Connection = uow.conn  # type: ignore[attr-defined]
        r = t.promo_redemptions
        return list(
            conn.execute(sa.select(r.c.team_id).where(r.c.promo_code_id == promo_id)).scalars()
        )


def test_fifty_teams_racing_for_a_code_limited_to_ten_get_exactly_ten(
    ctx: Context, rounds: Iterator[int]
) -> None:
    """Guard: the conditional UPDATE of the count. Seen to fail without it (module
    docstring, A and B): 40 crashes on the CHECK constraint, or 50 redemptions."""
    teams = admins(ctx, 50)
    for _ in rounds:
        code = fresh_code(ctx, max_redemptions=10)
        outcomes = race(ctx, teams, code.display_code)
        assert Counter(o for _, o in outcomes) == {REDEEMED: 10, "promo_code_limit_reached": 40}
        winners = sorted(team for team, o in outcomes if o == REDEEMED)
        assert sorted(redemption_rows(ctx, code.id)) == winners
        assert get_promo_code(ctx, OPERATOR, code.id).redemptions == 10


def test_one_team_sending_twenty_redemptions_at_once_gets_the_credit_once(
    ctx: Context, rounds: Iterator[int]
) -> None:
    """Guard: UNIQUE (promo_code_id, team_id). Seen to fail without it (module docstring,
    C): 20 grants to one team.

    The team's requests queue on its row lock, so exactly one wins, the next ten fail as
    already redeemed, and the throttle then refuses the last nine without a lookup."""
    (team,) = admins(ctx, 1)
    for _ in rounds:
        code = fresh_code(ctx, max_redemptions=100)
        outcomes = race(ctx, [team] * 20, code.display_code.lower())
        assert Counter(o for _, o in outcomes) == {
            REDEEMED: 1,
            "promo_code_already_redeemed": MAX_FAILED_ATTEMPTS,
            "too_many_attempts": 20 - 1 - MAX_FAILED_ATTEMPTS,
        }
        assert redemption_rows(ctx, code.id) == [team.team_id]
        assert get_promo_code(ctx, OPERATOR, code.id).redemptions == 1
    with ctx.uow(write=False) as uow:
        grants = [g for g in uow.grants.for_team(team.team_id) if g.source.value == "promo_code"]
    assert len(grants) == ROUNDS


def test_thirty_teams_sending_three_requests_each_for_ten_redemptions(
    ctx: Context, rounds: Iterator[int]
) -> None:
    """Guards: both. Seen to fail without either (module docstring, A to C): crashes or 30
    redemptions without the count guard, a team redeeming twice without the UNIQUE one.

    A team that wins hears "already redeemed" for its two other requests (that refusal
    comes before "limit reached"); a team that loses hears "limit reached" three times."""
    teams = admins(ctx, 30)
    for _ in rounds:
        code = fresh_code(ctx, max_redemptions=10)
        outcomes = race(ctx, teams * 3, code.display_code)
        assert Counter(o for _, o in outcomes) == {
            REDEEMED: 10,
            "promo_code_already_redeemed": 20,
            "promo_code_limit_reached": 60,
        }
        by_team: dict[str, list[str]] = {}
        for team, outcome in outcomes:
            by_team.setdefault(team, []).append(outcome)
        winners = {team for team, o in by_team.items() if REDEEMED in o}
        assert len(winners) == 10
        for team, seen in by_team.items():
            if team in winners:
                assert sorted(seen) == sorted([REDEEMED] + ["promo_code_already_redeemed"] * 2)
            else:
                assert seen == ["promo_code_limit_reached"] * 3
        assert sorted(redemption_rows(ctx, code.id)) == sorted(winners)
        assert get_promo_code(ctx, OPERATOR, code.id).redemptions == 10
