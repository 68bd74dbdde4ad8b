"""An in-memory unit of work for testing service rules without a database.

It holds users, teams, memberships, promo codes and the audit log, with the same
rules as the SQL repositories where a service relies on them (a promo code's claim
succeeds only while it is enabled, in its window and under its limit; one redemption
per team). A unit of work works on a copy of the state that ``commit`` makes the new
state, so a use case that raises leaves nothing behind, as a rolled-back transaction.

The other repositories (tokens, grants, ledger, idempotency, pricing, usage, payments,
recharges, invoices) are left to the database tests: their rules are the database's own
(UNIQUE keys, guarded updates, row locks), so a fake of them would test itself. Reaching
one from a fake unit of work fails the test at once, naming the repository
(docs/decisions/0011).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import count

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.holds.memory import MemoryHoldBook
from creditledger.adapters.notify.webhooks import StandardWebhooks
from creditledger.adapters.payments.delivery import ManualOutbox
from creditledger.adapters.payments.sandbox import SandboxProvider
from creditledger.adapters.ratelimit.limiter import LimitsRateLimiter
from creditledger.adapters.ratelimit.window import SlidingWindowCounter
from creditledger.config import Settings
from creditledger.domain.accounts import (
    BillingMode,
    Member,
    Principal,
    Role,
    Team,
    TeamReads,
    TokenKind,
)
from creditledger.domain.audit import AuditEvent, AuditFilter
from creditledger.domain.money import Nanos
from creditledger.domain.promo_codes import PromoCode
from creditledger.domain.usage import UsageLocks, UsageReads
from creditledger.services.context import Context
from creditledger.services.ports import (
    Grants,
    Idempotency,
    Invoices,
    Ledger,
    Notices,
    Payments,
    Pricing,
    Recharges,
    Tokens,
    Usage,
    WebSessions,
)


@dataclass
class State:
    """Everything the fake stores, as committed."""

    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    """user id → (email, password hash)."""
    teams: dict[str, Team] = field(default_factory=dict)
    members: dict[tuple[str, str], tuple[Role, datetime]] = field(default_factory=dict)
    """(team id, user id) → (role, joined at), in the order they joined."""
    promo_codes: dict[str, PromoCode] = field(default_factory=dict)
    redemptions: set[tuple[str, str]] = field(default_factory=set)
    """(promo id, team id) of every redemption."""
    audit: list[AuditEvent] = field(default_factory=list)


class FakeUsers:
    def __init__(self, state: State) -> None:
        self.state = state

    def add(self, user_id: str, email: str, password_hash: str, at: datetime) -> None:
        assert all(e != email for e, _ in self.state.users.values()), "UNIQUE (email)"
        self.state.users[user_id] = (email, password_hash)

    def find_by_email(self, email: str) -> tuple[str, str] | None:
        for user_id, (e, password_hash) in self.state.users.items():
            if e == email:
                return user_id, password_hash
        return None

    def email_of(self, user_id: str) -> str | None:
        found = self.state.users.get(user_id)
        return None if found is None else found[0]


class FakeTeams:
    def __init__(self, state: State) -> None:
        self.state = state

    def add(self, team_id: str, name: str, at: datetime) -> None:
        self.state.teams[team_id] = Team(
            id=team_id,
            name=name,
            billing_mode=BillingMode.PREPAID,
            tier_level_override=None,
            lifetime_paid=0,
            unpaid=0,
            created_at=at,
        )

    def get(self, team_id: str) -> Team | None:
        return self.state.teams.get(team_id)

    def exists(self, team_id: str) -> bool:
        return team_id in self.state.teams

    def lock(self, team_id: str) -> Team | None:
        return self.get(team_id)  # one unit of work at a time: nothing to wait for

    def revisions_with_price_version(self, team_ids: Sequence[str]) -> tuple[dict[str, int], int]:
        return {i: team.revision for i, team in self.lock_many(team_ids).items()}, 0

    def lock_for_usage(self, team_ids: Sequence[str]) -> UsageLocks:
        teams = self.lock_many(team_ids)
        return UsageLocks(
            teams=frozenset(teams),
            price_version=0 if teams else None,  # the fake holds no price book
            watched=frozenset(),  # the fake holds no webhooks
            recharging=frozenset(),  # nor auto-recharge settings
            credit=dict.fromkeys(teams, 0),  # nor grants
        )

    def lock_many(self, team_ids: Sequence[str]) -> dict[str, Team]:
        return {i: self.state.teams[i] for i in sorted(set(team_ids)) if i in self.state.teams}

    def set_billing(self, team_id: str, mode: BillingMode, tier_override: int | None) -> None:
        team = self.state.teams[team_id]
        self.state.teams[team_id] = replace(
            team, billing_mode=mode, tier_level_override=tier_override, revision=team.revision + 1
        )

    def add_lifetime_paid(self, team_id: str, amount: Nanos) -> None:
        team = self.state.teams[team_id]
        self.state.teams[team_id] = replace(
            team, lifetime_paid=team.lifetime_paid + amount, revision=team.revision + 1
        )

    def credit_balance(self, team_id: str) -> Nanos:
        return 0  # the fake holds no grants


class FakeMembers:
    def __init__(self, state: State) -> None:
        self.state = state

    def _member(self, user_id: str, role: Role, joined: datetime) -> Member:
        return Member(user_id, self.state.users[user_id][0], role, joined)

    def add(self, team_id: str, user_id: str, role: Role, at: datetime) -> None:
        assert (team_id, user_id) not in self.state.members, "PRIMARY KEY (team, user)"
        self.state.members[(team_id, user_id)] = (role, at)

    def role_of(self, team_id: str, user_id: str) -> Role | None:
        found = self.state.members.get((team_id, user_id))
        return None if found is None else found[0]

    def in_team(self, team_id: str) -> list[Member]:
        rows = sorted(
            (joined, u, role)
            for (t, u), (role, joined) in self.state.members.items()
            if t == team_id
        )
        return [self._member(u, role, joined) for joined, u, role in rows]

    def set_role(self, team_id: str, user_id: str, role: Role) -> None:
        _, joined = self.state.members[(team_id, user_id)]
        self.state.members[(team_id, user_id)] = (role, joined)

    def remove(self, team_id: str, user_id: str) -> None:
        del self.state.members[(team_id, user_id)]

    def teams_of(self, user_id: str) -> list[str]:
        return [team.id for team, _ in self.memberships_of(user_id)]

    def memberships_of(self, user_id: str) -> list[tuple[Team, Role]]:
        rows = sorted(
            (joined, t, role)
            for (t, u), (role, joined) in self.state.members.items()
            if u == user_id
        )
        return [(self.state.teams[t], role) for _, t, role in rows]

    def page(self, team_id: str, after: tuple[datetime, str] | None, limit: int) -> list[Member]:
        members = self.in_team(team_id)
        if after is not None:
            members = [m for m in members if (m.created_at, m.user_id) > after]
        return members[:limit]


class FakePromoCodes:
    def __init__(self, state: State) -> None:
        self.state = state

    def add(self, code: PromoCode, created_by: str) -> bool:
        if any(c.code == code.code for c in self.state.promo_codes.values()):
            return False
        self.state.promo_codes[code.id] = code
        return True

    def get(self, promo_id: str) -> PromoCode | None:
        return self.state.promo_codes.get(promo_id)

    def find(self, code: str) -> PromoCode | None:
        return next((c for c in self.state.promo_codes.values() if c.code == code), None)

    def set_disabled(self, promo_id: str, at: datetime | None) -> None:
        code = self.state.promo_codes[promo_id]
        disabled_at = None if at is None else (code.disabled_at or at)
        self.state.promo_codes[promo_id] = replace(code, disabled_at=disabled_at)

    def claim(self, promo_id: str, at: datetime) -> bool:
        """The SQL's guarded UPDATE: enabled, in its window, under its limit."""
        c = self.state.promo_codes.get(promo_id)
        if (
            c is None
            or c.redemptions >= c.max_redemptions
            or c.disabled_at is not None
            or at < c.valid_from
            or (c.redeem_by is not None and at >= c.redeem_by)
            or (c.credit_expires_at is not None and at >= c.credit_expires_at)
        ):
            return False
        self.state.promo_codes[promo_id] = replace(c, redemptions=c.redemptions + 1)
        return True

    def record_redemption(
        self,
        redemption_id: str,
        promo_id: str,
        team_id: str,
        grant_id: str,
        user_id: str,
        at: datetime,
    ) -> bool:
        if (promo_id, team_id) in self.state.redemptions:
            return False
        self.state.redemptions.add((promo_id, team_id))
        return True

    def redeemed_by_team(self, promo_id: str, team_id: str) -> bool:
        return (promo_id, team_id) in self.state.redemptions


class FakeAuditLog:
    def __init__(self, state: State) -> None:
        self.state = state

    def record(self, event: AuditEvent) -> None:
        self.state.audit.append(replace(event, seq=len(self.state.audit) + 1))

    def page(self, flt: AuditFilter, before_seq: int | None, limit: int) -> list[AuditEvent]:
        rows = [
            e
            for e in reversed(self.state.audit)
            if (flt.team_id is None or e.team_id == flt.team_id)
            and (flt.actor is None or e.actor == flt.actor)
            and (flt.since is None or e.at >= flt.since)
            and (before_seq is None or e.seq < before_seq)
        ]
        return rows[:limit]


class NotFaked(AssertionError):
    """A use case reached a repository that only the database tests cover."""


class FakeUnitOfWork:
    def __init__(self, state: State, ids: Iterator[int]) -> None:
        self.state = state
        self.committed = False
        self._ids = ids

    @property
    def users(self) -> FakeUsers:
        return FakeUsers(self.state)

    @property
    def teams(self) -> FakeTeams:
        return FakeTeams(self.state)

    @property
    def members(self) -> FakeMembers:
        return FakeMembers(self.state)

    @property
    def promo_codes(self) -> FakePromoCodes:
        return FakePromoCodes(self.state)

    @property
    def audit(self) -> FakeAuditLog:
        return FakeAuditLog(self.state)

    @property
    def tokens(self) -> Tokens:
        raise NotFaked("tokens are covered by the database tests only")

    @property
    def web_sessions(self) -> WebSessions:
        raise NotFaked("web sessions are covered by the database tests only")

    @property
    def grants(self) -> Grants:
        raise NotFaked("grants are covered by the database tests only")

    @property
    def ledger(self) -> Ledger:
        raise NotFaked("the ledger is covered by the database tests only")

    @property
    def idempotency(self) -> Idempotency:
        raise NotFaked("idempotency keys are covered by the database tests only")

    @property
    def pricing(self) -> Pricing:
        raise NotFaked("pricing is covered by the database tests only")

    @property
    def usage(self) -> Usage:
        raise NotFaked("usage is covered by the database tests only")

    @property
    def payments(self) -> Payments:
        raise NotFaked("payments are covered by the database tests only")

    @property
    def recharges(self) -> Recharges:
        raise NotFaked("recharges are covered by the database tests only")

    @property
    def invoices(self) -> Invoices:
        raise NotFaked("invoices are covered by the database tests only")

    @property
    def notices(self) -> Notices:
        raise NotFaked("notices are covered by the database tests only")

    def commit(self) -> None:
        self.committed = True

    def read_for_usage(self, keys: Sequence[tuple[str, str]]) -> UsageReads:
        raise NotFaked("usage is covered by the database tests only")

    def read_teams(self, team_ids: Sequence[str]) -> TeamReads:
        raise NotFaked("grants and pricing are covered by the database tests only")

    def together(self, rows: int) -> AbstractContextManager[None]:
        raise NotFaked("usage is covered by the database tests only")

    def new_id(self, prefix: str) -> str:
        # The shape of real ids (``domain/ids.py``): a prefix and 26 base-32 characters.
        return f"{prefix}_{next(self._ids):026d}"


class FakeUnitOfWorkFactory:
    """Hands out units of work over one shared state; counts how many were opened."""

    def __init__(self) -> None:
        self.state = State()
        self.opened = 0
        self._ids = count(1)

    def dispose(self) -> None:
        """Nothing to close."""

    @contextmanager
    def __call__(self, *, write: bool = True) -> Iterator[FakeUnitOfWork]:
        self.opened += 1
        uow = FakeUnitOfWork(copy.deepcopy(self.state), self._ids)
        yield uow
        if uow.committed and write:
            self.state = uow.state


class FakePasswords:
    """Reversible on purpose: a fake, never for real passwords."""

    def hash(self, password: str) -> str:
        return f"fake${password}"

    def verify(self, password_hash: str, password: str) -> bool:
        return password_hash == f"fake${password}"


class NoInvariants:
    """The fake's state is plain Python values: there are no cached balances to recheck."""

    def violations(self) -> Iterator[str]:
        return iter(())


class MigratedSchema:
    def problem(self) -> str | None:
        return None


SANDBOX_SECRET = "whsec_fake_services"


@dataclass
class World:
    """A context over the fakes, and the handles a test needs to set it up and look."""

    ctx: Context
    uow: FakeUnitOfWorkFactory
    clock: FixedClock
    sandbox: SandboxProvider

    @property
    def state(self) -> State:
        return self.uow.state

    def user(self, email: str) -> Principal:
        """A user, as their personal token presents them."""
        user_id = f"user_{len(self.state.users) + 1:026d}"
        self.state.users[user_id] = (email, FakePasswords().hash("correct horse"))
        return Principal(TokenKind.PERSONAL, f"tok_{user_id}", user_id=user_id)

    def team(self, *members: tuple[Principal, Role]) -> str:
        team_id = f"team_{len(self.state.teams) + 1:026d}"
        FakeTeams(self.state).add(team_id, "Team", self.clock.now())
        for principal, role in members:
            assert principal.user_id is not None
            FakeMembers(self.state).add(team_id, principal.user_id, role, self.clock.now())
        return team_id


OPERATOR = Principal(TokenKind.OPERATOR, "tok_operator", name="ops", client="192.0.2.1")
SERVICE = Principal(TokenKind.SERVICE, "tok_service", name="gateway")


def world(at: datetime, **settings: object) -> World:
    clock = FixedClock(at)
    uow = FakeUnitOfWorkFactory()
    sandbox = SandboxProvider(
        SANDBOX_SECRET, "http://testserver", ManualOutbox(SANDBOX_SECRET), clock.now
    )
    ctx = Context(
        uow=uow,
        clock=clock,
        passwords=FakePasswords(),
        settings=Settings.model_validate({"database_url": "sqlite://", **settings}),
        invariants=NoInvariants(),
        schema=MigratedSchema(),
        rate_limiter=LimitsRateLimiter(),
        request_limiter=SlidingWindowCounter(),
        notifier=StandardWebhooks(allow_private=True),
        payments=sandbox,
        holds=MemoryHoldBook(),
        cursor_secret=lambda: "fake-cursor-secret",
    )
    return World(ctx, uow, clock, sandbox)
