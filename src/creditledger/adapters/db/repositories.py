"""SQL repositories. None of them commits: the unit of work does."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from creditledger.adapters.db import bulk
from creditledger.adapters.db import tables as t
from creditledger.adapters.db.rows import (
    GRANT_COLUMNS,
    grant_from_row,
    grant_from_tuple,
    grant_to_row,
    team_from_row,
    team_from_tuple,
)
from creditledger.adapters.db.types import to_micros
from creditledger.domain import ledger
from creditledger.domain.accounts import BillingMode, Member, Principal, Role, Team, TokenKind
from creditledger.domain.consumption import consumption_order_key
from creditledger.domain.errors import EmailTaken
from creditledger.domain.grants import Grant, GrantKind
from creditledger.domain.history import HistoryEntry, HistoryFilter
from creditledger.domain.ledger import EntryType, Transaction
from creditledger.domain.notices import EXPIRING_MARK
from creditledger.domain.sessions import WebSession
from creditledger.domain.usage import UsageLocks

_TEAM_COLUMNS = (
    "id, name, billing_mode, tier_level_override, lifetime_paid_nanos, unpaid_nanos, "
    "created_at, revision"
)
_TX_COLUMNS = ("id", "team_id", "type", "occurred_at", "created_at", "description", "reference")
_POSTING_COLUMNS = (
    "transaction_id",
    "account",
    "amount_nanos",
    "team_id",
    "grant_id",
    "balance_after_nanos",
)

# The access checks of every team page, built once: their text never changes, so
# building and caching them is no longer paid per request.
_TEAM_EXISTS = sa.select(sa.literal(1)).where(
    t.teams.c.id == sa.bindparam("team_id", type_=t.teams.c.id.type)
)
_ROLE_OF = sa.select(t.memberships.c.role).where(
    t.memberships.c.team_id == sa.bindparam("team_id", type_=t.memberships.c.team_id.type),
    t.memberships.c.user_id == sa.bindparam("user_id", type_=t.memberships.c.user_id.type),
)
_PRICE_VERSION = "SELECT COALESCE(MAX(id), 0) FROM price_books"
# A team's live webhook (adapters/db/notices.py) and its auto-recharge being on
# (adapters/db/payments.py), read with its lock; a test pins them to those reads.
_WATCHED = (
    "EXISTS (SELECT 1 FROM notification_webhooks w"
    " WHERE w.team_id = teams.id AND w.disabled_at IS NULL)"
)
_RECHARGING = (
    "EXISTS (SELECT 1 FROM auto_recharge_settings s WHERE s.team_id = teams.id AND s.enabled)"
)
USAGE_LOCK = (
    f"SELECT id, credit_nanos, ({_PRICE_VERSION}), "  # noqa: S608 - constants
    f"{_WATCHED}, {_RECHARGING} FROM teams WHERE 1 = 1"
)
"""The teams a usage charge locks, by ``id``, in ``LOCK_ORDER``: the rows of
:func:`usage_locks`."""
LOCK_ORDER = "ORDER BY id FOR UPDATE"
GRANTS_OF_TEAMS = f"SELECT {GRANT_COLUMNS} FROM grants WHERE 1 = 1"  # noqa: S608 - constant
"""Grants by ``team_id``: the rows of :func:`grants_by_team`."""


def usage_locks(rows: Sequence[Sequence[Any]]) -> UsageLocks:
    return UsageLocks(
        teams=frozenset(r[0] for r in rows),
        price_version=int(rows[0][2]) if rows else None,
        watched=frozenset(r[0] for r in rows if r[3]),
        recharging=frozenset(r[0] for r in rows if r[4]),
        credit={r[0]: int(r[1]) for r in rows},
    )


def grants_by_team(
    team_ids: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> dict[str, list[Grant]]:
    """Each team's grants in the order of consumption, every team of ``team_ids`` there."""
    out: dict[str, list[Grant]] = {tid: [] for tid in team_ids}
    for r in rows:
        grant = grant_from_tuple(r)
        out[grant.team_id].append(grant)
    for grants in out.values():
        grants.sort(key=consumption_order_key)
    return out


_NEWEST = 2**63 - 1  # above every posting's seq: the first page's keyset bound

# The order of consumption as SQL; domain/consumption.py holds the same keys, and a test
# checks both agree.
CONSUMPTION_ORDER = (
    sa.case((t.grants.c.kind == "promotional", 0), else_=1),
    sa.case((t.grants.c.expires_at.is_(None), 1), else_=0),
    sa.case((t.grants.c.is_scoped, 0), else_=1),
    t.grants.c.expires_at,
    t.grants.c.effective_at,
    t.grants.c.id.desc(),
)


def usable_at(now: datetime) -> sa.ColumnElement[bool]:
    """``domain.availability.is_usable`` for usage of any scope, as a WHERE clause on
    ``grants``; tests/integration/test_availability_sql.py checks that both agree."""
    g = t.grants
    return sa.and_(
        g.c.voided_at.is_(None),
        g.c.remaining_nanos > 0,
        g.c.effective_at <= now,
        sa.or_(g.c.expires_at.is_(None), g.c.expires_at > now),
    )


def expiry_due_by(cutoff: datetime) -> sa.ColumnElement[bool]:
    """``domain.availability.expiry_due`` as a WHERE clause on ``grants``;
    tests/integration/test_availability_sql.py checks that both agree."""
    g = t.grants
    return sa.and_(
        g.c.voided_at.is_(None),
        g.c.remaining_nanos > 0,
        g.c.expires_at.is_not(None),
        g.c.expires_at <= cutoff,
    )


class _Repo:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn


class SqlUsers(_Repo):
    def add(self, user_id: str, email: str, password_hash: str, at: datetime) -> None:
        try:
            self.conn.execute(
                t.users.insert().values(
                    id=user_id, email=email, password_hash=password_hash, created_at=at
                )
            )
        except IntegrityError as exc:
            raise EmailTaken(
                "An account with this email already exists; log in instead.", param="email"
            ) from exc

    def find_by_email(self, email: str) -> tuple[str, str] | None:
        row = self.conn.execute(
            sa.select(t.users.c.id, t.users.c.password_hash).where(t.users.c.email == email)
        ).first()
        return None if row is None else (row.id, row.password_hash)

    def email_of(self, user_id: str) -> str | None:
        value = self.conn.execute(
            sa.select(t.users.c.email).where(t.users.c.id == user_id)
        ).scalar()
        return None if value is None else str(value)


class SqlTeams(_Repo):
    def add(self, team_id: str, name: str, at: datetime) -> None:
        self.conn.execute(t.teams.insert().values(id=team_id, name=name, created_at=at))

    def get(self, team_id: str) -> Team | None:
        row = self.conn.execute(sa.select(t.teams).where(t.teams.c.id == team_id)).first()
        return None if row is None else team_from_row(row)

    def exists(self, team_id: str) -> bool:
        return self.conn.execute(_TEAM_EXISTS, {"team_id": team_id}).first() is not None

    def get_many_later(
        self, team_ids: Sequence[str]
    ) -> Callable[[], tuple[dict[str, Team], int | None]]:
        """The teams that exist among ``team_ids`` and the newest price book version id
        (None when none exists), sent now (``bulk.together`` sends it with others)."""
        later = bulk.select_in(
            self.conn,
            f"SELECT {_TEAM_COLUMNS}, ({_PRICE_VERSION}) FROM teams WHERE 1 = 1",  # noqa: S608
            (),
            "id",
            sorted(set(team_ids)),
        )

        def teams() -> tuple[dict[str, Team], int | None]:
            rows = later()
            version = int(rows[0][-1]) if rows else None
            return {r[0]: team_from_tuple(r[:-1]) for r in rows}, version

        return teams

    def revisions_with_price_version(self, team_ids: Sequence[str]) -> tuple[dict[str, int], int]:
        rows = bulk.select_in(
            self.conn,
            f"SELECT id, revision, ({_PRICE_VERSION}) FROM teams WHERE 1 = 1",  # noqa: S608
            (),
            "id",
            sorted(set(team_ids)),
        )()
        version = int(rows[0][-1]) if rows else self._price_version()
        return {r[0]: int(r[1]) for r in rows}, version

    def _price_version(self) -> int:
        version = self.conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(t.price_books.c.id), 0))
        ).scalar_one()
        return int(version)

    def lock(self, team_id: str) -> Team | None:
        row = self.conn.execute(
            sa.select(t.teams).where(t.teams.c.id == team_id).with_for_update()
        ).first()
        return None if row is None else team_from_row(row)

    def lock_many(self, team_ids: Sequence[str]) -> dict[str, Team]:
        rows = bulk.select_in(
            self.conn,
            f"SELECT {_TEAM_COLUMNS} FROM teams WHERE 1 = 1",  # noqa: S608 - constant
            (),
            "id",
            sorted(set(team_ids)),
            "ORDER BY id FOR UPDATE",
        )()
        return {r[0]: team_from_tuple(r) for r in rows}

    def lock_for_usage(self, team_ids: Sequence[str]) -> UsageLocks:
        return self.lock_for_usage_later(team_ids)()

    def lock_for_usage_later(self, team_ids: Sequence[str]) -> Callable[[], UsageLocks]:
        """:meth:`lock_for_usage`, sent now (``bulk.together`` sends it with others)."""
        later = bulk.select_in(self.conn, USAGE_LOCK, (), "id", sorted(set(team_ids)), LOCK_ORDER)
        return lambda: usage_locks(later())

    def set_billing(self, team_id: str, mode: BillingMode, tier_override: int | None) -> None:
        self.conn.execute(
            t.teams.update()
            .where(t.teams.c.id == team_id)
            .values(
                billing_mode=mode.value,
                tier_level_override=tier_override,
                revision=t.teams.c.revision + 1,
            )
        )

    def add_lifetime_paid(self, team_id: str, amount: int) -> None:
        self.conn.execute(
            t.teams.update()
            .where(t.teams.c.id == team_id)
            .values(
                lifetime_paid_nanos=t.teams.c.lifetime_paid_nanos + amount,
                revision=t.teams.c.revision + 1,
            )
        )

    def credit_balance(self, team_id: str) -> int:
        value = self.conn.execute(
            sa.select(t.teams.c.credit_nanos).where(t.teams.c.id == team_id)
        ).scalar_one()
        return int(value)


class SqlMembers(_Repo):
    def add(self, team_id: str, user_id: str, role: Role, at: datetime) -> None:
        self.conn.execute(
            t.memberships.insert().values(
                team_id=team_id, user_id=user_id, role=role.value, created_at=at
            )
        )

    def role_of(self, team_id: str, user_id: str) -> Role | None:
        value = self.conn.execute(_ROLE_OF, {"team_id": team_id, "user_id": user_id}).scalar()
        return None if value is None else Role(value)

    def in_team(self, team_id: str) -> list[Member]:
        rows = self.conn.execute(
            sa.select(t.memberships, t.users.c.email)
            .join(t.users, t.users.c.id == t.memberships.c.user_id)
            .where(t.memberships.c.team_id == team_id)
            .order_by(t.memberships.c.created_at, t.memberships.c.user_id)
        )
        return [Member(r.user_id, r.email, Role(r.role), r.created_at) for r in rows]

    def set_role(self, team_id: str, user_id: str, role: Role) -> None:
        self.conn.execute(
            t.memberships.update()
            .where(t.memberships.c.team_id == team_id, t.memberships.c.user_id == user_id)
            .values(role=role.value)
        )

    def remove(self, team_id: str, user_id: str) -> None:
        self.conn.execute(
            t.memberships.delete().where(
                t.memberships.c.team_id == team_id, t.memberships.c.user_id == user_id
            )
        )

    def teams_of(self, user_id: str) -> list[str]:
        rows = self.conn.execute(
            sa.select(t.memberships.c.team_id)
            .where(t.memberships.c.user_id == user_id)
            .order_by(t.memberships.c.created_at, t.memberships.c.team_id)
        )
        return [r.team_id for r in rows]

    def memberships_of(self, user_id: str) -> list[tuple[Team, Role]]:
        m = t.memberships
        rows = self.conn.execute(
            sa.select(t.teams, m.c.role)
            .join(m, m.c.team_id == t.teams.c.id)
            .where(m.c.user_id == user_id)
            .order_by(m.c.created_at, m.c.team_id)
        )
        return [(team_from_row(r), Role(r.role)) for r in rows]

    def page(self, team_id: str, after: tuple[datetime, str] | None, limit: int) -> list[Member]:
        m = t.memberships
        query = (
            sa.select(m, t.users.c.email)
            .join(t.users, t.users.c.id == m.c.user_id)
            .where(m.c.team_id == team_id)
            .order_by(m.c.created_at, m.c.user_id)
            .limit(limit)
        )
        if after is not None:
            joined, user_id = after
            query = query.where(
                (m.c.created_at > joined) | ((m.c.created_at == joined) & (m.c.user_id > user_id))
            )
        rows = self.conn.execute(query)
        return [Member(r.user_id, r.email, Role(r.role), r.created_at) for r in rows]


class SqlTokens(_Repo):
    def add(
        self,
        token_id: str,
        token_hash: str,
        kind: TokenKind,
        user_id: str | None,
        name: str,
        at: datetime,
    ) -> None:
        self.conn.execute(
            t.api_tokens.insert().values(
                id=token_id,
                token_hash=token_hash,
                kind=kind.value,
                user_id=user_id,
                name=name,
                created_at=at,
            )
        )

    def principal_for(self, token_hash: str) -> Principal | None:
        row = self.conn.execute(
            sa.select(
                t.api_tokens.c.id, t.api_tokens.c.kind, t.api_tokens.c.user_id, t.api_tokens.c.name
            ).where(t.api_tokens.c.token_hash == token_hash, t.api_tokens.c.revoked_at.is_(None))
        ).first()
        if row is None:
            return None
        return Principal(TokenKind(row.kind), row.id, row.user_id, name=row.name)

    def live_among(self, token_hashes: Sequence[str]) -> set[str]:
        rows = bulk.select_in(
            self.conn,
            "SELECT token_hash FROM api_tokens WHERE revoked_at IS NULL",
            (),
            "token_hash",
            sorted(set(token_hashes)),
        )()
        return {str(r[0]) for r in rows}


class SqlWebSessions(_Repo):
    def add(self, session: WebSession, session_hash: str) -> None:
        self.conn.execute(
            t.web_sessions.insert().values(
                id=session.id,
                session_hash=session_hash,
                user_id=session.user_id,
                created_at=session.created_at,
                expires_at=session.expires_at,
            )
        )

    def find(self, session_hash: str) -> WebSession | None:
        s = t.web_sessions.c
        row = self.conn.execute(
            sa.select(s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at).where(
                s.session_hash == session_hash
            )
        ).first()
        if row is None:
            return None
        return WebSession(row.id, row.user_id, row.created_at, row.expires_at, row.revoked_at)

    def revoke(self, session_hash: str, at: datetime) -> None:
        s = t.web_sessions.c
        self.conn.execute(
            t.web_sessions.update()
            .where(s.session_hash == session_hash, s.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    def delete_ended_before(self, at: datetime) -> int:
        s = t.web_sessions.c
        result = self.conn.execute(
            t.web_sessions.delete().where(sa.or_(s.expires_at < at, s.revoked_at < at))
        )
        return result.rowcount

    def revoke_all_of(self, user_id: str, at: datetime) -> int:
        s = t.web_sessions.c
        result = self.conn.execute(
            t.web_sessions.update()
            .where(s.user_id == user_id, s.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return result.rowcount


class SqlGrants(_Repo):
    def add(self, grant: Grant, note: str | None) -> None:
        # A grant starts empty; the ledger posting that issues it fills `remaining`.
        row = grant_to_row(grant) | {"remaining_nanos": 0, "note": note}
        self.conn.execute(t.grants.insert().values(**row))

    def get(self, team_id: str, grant_id: str) -> Grant | None:
        row = self.conn.execute(
            sa.select(t.grants).where(t.grants.c.id == grant_id, t.grants.c.team_id == team_id)
        ).first()
        return None if row is None else grant_from_row(row)

    def for_team(self, team_id: str) -> list[Grant]:
        rows = self.conn.execute(
            sa.select(t.grants).where(t.grants.c.team_id == team_id).order_by(*CONSUMPTION_ORDER)
        )
        return [grant_from_row(r) for r in rows]

    def set_voided(self, grant_id: str, at: datetime) -> None:
        team_id = self.conn.execute(
            t.grants.update()
            .where(t.grants.c.id == grant_id)
            .values(voided_at=at)
            .returning(t.grants.c.team_id)
        ).scalar_one()
        self.conn.execute(
            t.teams.update().where(t.teams.c.id == team_id).values(revision=t.teams.c.revision + 1)
        )

    def for_teams(self, team_ids: Sequence[str]) -> dict[str, list[Grant]]:
        return self.for_teams_later(team_ids)()

    def for_teams_later(self, team_ids: Sequence[str]) -> Callable[[], dict[str, list[Grant]]]:
        """Read on the driver connection: this is on the ingestion hot path."""
        later = bulk.select_in(self.conn, GRANTS_OF_TEAMS, (), "team_id", list(team_ids))
        return lambda: grants_by_team(team_ids, later())

    def to_warn_of_expiry(self, start: datetime, end: datetime, limit: int) -> list[Grant]:
        """Grants not voided, with credit left, expiring after ``start`` and by ``end``,
        of teams with an enabled webhook, not warned of yet (no mark)."""
        g = t.grants.c
        w = t.notification_webhooks.c
        m = t.notice_marks.c
        warned = sa.exists().where(
            m.team_id == g.team_id, m.key == sa.literal(EXPIRING_MARK) + g.id
        )
        rows = self.conn.execute(
            sa.select(t.grants)
            .join(t.notification_webhooks, w.team_id == g.team_id)
            .where(
                w.disabled_at.is_(None),
                g.voided_at.is_(None),
                g.remaining_nanos > 0,
                g.expires_at > start,
                g.expires_at <= end,
                ~warned,
            )
            .order_by(g.expires_at, g.id)
            .limit(limit)
        )
        return [grant_from_row(r) for r in rows]

    def due_for_expiry(self, cutoff: datetime, limit: int) -> list[tuple[str, str]]:
        g = t.grants
        rows = self.conn.execute(
            sa.select(g.c.team_id, g.c.id)
            .where(expiry_due_by(cutoff))
            .order_by(g.c.team_id, g.c.id)
            .limit(limit)
        )
        return [(r.team_id, r.id) for r in rows]


class SqlLedger(_Repo):
    def post(self, tx: Transaction, tx_id: str, at: datetime) -> None:
        self.post_many([(tx_id, tx)], at)

    def post_many(
        self,
        txs: Sequence[tuple[str, Transaction]],
        at: datetime,
        credit: Mapping[str, int] | None = None,
    ) -> None:
        """Append transactions (teams already locked) and move the cached balances.

        Team-side postings are stamped with the team's credit balance after them, a
        running sum from ``teams.credit_nanos`` before: ``credit`` when the caller read
        it with the lock, else the teams' update answers their new credit, less what it
        added, so no read of the balances is needed either way.
        """
        if not txs:
            return
        credit_delta: dict[str, int] = defaultdict(int)
        unpaid_delta: dict[str, int] = defaultdict(int)
        grant_deltas: dict[str, int] = defaultdict(int)
        for _, tx in txs:
            for p in tx.postings:
                if p.grant_id is not None:
                    credit_delta[tx.team_id] += p.amount
                    grant_deltas[p.grant_id] += p.amount
                elif ledger.is_owed_account(p.account):
                    unpaid_delta[tx.team_id] -= p.amount
        team_ids = sorted({tx.team_id for _, tx in txs})
        after = bulk.add_to_columns(
            self.conn,
            "teams",
            "id",
            ("credit_nanos", "unpaid_nanos"),
            [(tid, credit_delta[tid], unpaid_delta[tid]) for tid in team_ids],
            bump="revision",
            returning=None if credit is not None else "credit_nanos",
        )
        running = (
            {tid: credit[tid] for tid in team_ids}
            if credit is not None
            else {tid: after[tid] - credit_delta[tid] for tid in team_ids}
        )
        created = to_micros(at)
        tx_rows: list[tuple[Any, ...]] = []
        posting_rows: list[tuple[Any, ...]] = []
        for tx_id, tx in txs:
            team = tx.team_id
            tx_rows.append(
                (
                    tx_id,
                    team,
                    tx.type.value,
                    to_micros(tx.occurred_at),
                    created,
                    tx.description,
                    tx.reference,
                )
            )
            for p in tx.postings:
                if p.grant_id is not None:
                    running[team] += p.amount
                    posting_rows.append(
                        (tx_id, p.account, p.amount, team, p.grant_id, running[team])
                    )
                elif ledger.is_owed_account(p.account):
                    posting_rows.append((tx_id, p.account, p.amount, team, None, running[team]))
                else:
                    posting_rows.append((tx_id, p.account, p.amount, None, None, None))
        bulk.insert_rows(self.conn, "ledger_transactions", _TX_COLUMNS, tx_rows)
        bulk.insert_rows(self.conn, "postings", _POSTING_COLUMNS, posting_rows)
        bulk.add_to_columns(
            self.conn, "grants", "id", ("remaining_nanos",), sorted(grant_deltas.items())
        )

    def history(
        self, team_id: str, flt: HistoryFilter, before_seq: int | None, limit: int
    ) -> list[HistoryEntry]:
        query = _history_query(
            flt.type is not None, flt.kind is not None, flt.since is not None, flt.until is not None
        )
        params: dict[str, Any] = {
            "team_id": team_id,
            "before": _NEWEST if before_seq is None else before_seq,
            "limit": limit,
        }
        if flt.type is not None:
            params["type"] = flt.type.value
        if flt.kind is not None:
            params["kind"] = flt.kind.value
        if flt.since is not None:
            params["since"] = flt.since
        if flt.until is not None:
            params["until"] = flt.until
        return [
            HistoryEntry(
                seq=seq,
                transaction_id=transaction_id,
                type=_ENTRY_TYPES[type_],
                occurred_at=occurred_at,
                amount=amount,
                grant_id=grant_id,
                kind=None if kind is None else _GRANT_KINDS[kind],
                description=description,
                balance_after=balance_after,
                reference=reference,
            )
            for (
                seq,
                transaction_id,
                amount,
                grant_id,
                balance_after,
                type_,
                occurred_at,
                description,
                reference,
                kind,
            ) in self.conn.execute(query, params).all()
        ]


_ENTRY_TYPES = {e.value: e for e in EntryType}
_GRANT_KINDS = {k.value: k for k in GrantKind}


@functools.cache
def _history_query(by_type: bool, by_kind: bool, since: bool, until: bool) -> sa.Select[Any]:
    """The credit history's keyset read, built once per combination of filters: every
    value is a bound parameter (``team_id``, ``before``, ``limit`` and the filters'), so
    the statement's text never changes and PostgreSQL runs it prepared."""
    p, tx, g = t.postings, t.ledger_transactions, t.grants
    team = sa.bindparam("team_id", type_=p.c.team_id.type)
    before = sa.bindparam("before", type_=sa.BigInteger)
    query = (
        sa.select(
            p.c.seq,
            p.c.transaction_id,
            p.c.amount_nanos,
            p.c.grant_id,
            p.c.balance_after_nanos,
            tx.c.type,
            tx.c.occurred_at,
            tx.c.description,
            tx.c.reference,
            g.c.kind,
        )
        .join(tx, tx.c.id == p.c.transaction_id)
        .outerjoin(g, g.c.id == p.c.grant_id)
        # The keyset bound is also given as a (team_id, seq) row value, which only the
        # team's index can serve: with `seq < n` alone PostgreSQL may walk the primary
        # key backwards and filter, reading every newer posting of every other team
        # first (1.6 s for the first page of a 10 M-entry history). SQLite ranges its
        # index scan on the plain `seq < n`.
        .where(
            p.c.team_id == team,
            p.c.seq < before,
            sa.tuple_(p.c.team_id, p.c.seq) < sa.tuple_(team, before),
        )
        .order_by(p.c.team_id.desc(), p.c.seq.desc())
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )
    if by_type:
        query = query.where(tx.c.type == sa.bindparam("type", type_=tx.c.type.type))
    if by_kind:
        query = query.where(g.c.kind == sa.bindparam("kind", type_=g.c.kind.type))
    if since:
        query = query.where(tx.c.occurred_at >= sa.bindparam("since", type_=tx.c.occurred_at.type))
    if until:
        query = query.where(tx.c.occurred_at < sa.bindparam("until", type_=tx.c.occurred_at.type))
    return query


def insert_ignoring_conflicts(conn: sa.Connection, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


class SqlIdempotency(_Repo):
    def claim(
        self, caller: str, key: str, request_hash: str, at: datetime, ttl_hours: int
    ) -> tuple[str, int | None, str | None] | None:
        k = t.idempotency_keys
        where = (k.c.principal_id == caller, k.c.key == key)
        # A claim past its time is forgotten, as if the key had never been used.
        self.conn.execute(k.delete().where(*where, k.c.expires_at <= at))
        # RETURNING, not rowcount, tells whether the row went in: psycopg reports -1
        # as the rowcount of an INSERT … ON CONFLICT DO NOTHING.
        inserted = self.conn.execute(
            insert_ignoring_conflicts(self.conn, k)
            .values(
                principal_id=caller,
                key=key,
                request_hash=request_hash,
                created_at=at,
                expires_at=at + timedelta(hours=ttl_hours),
            )
            .returning(k.c.key)
        ).first()
        if inserted is not None:
            return None
        row = self.conn.execute(
            sa.select(k.c.request_hash, k.c.status_code, k.c.response_body).where(*where)
        ).one()
        return (row.request_hash, row.status_code, row.response_body)

    def complete(self, caller: str, key: str, status: int, body: str) -> bool:
        k = t.idempotency_keys
        result = self.conn.execute(
            k.update()
            .where(k.c.principal_id == caller, k.c.key == key, k.c.status_code.is_(None))
            .values(status_code=status, response_body=body)
        )
        return result.rowcount == 1

    def release(self, caller: str, key: str) -> None:
        k = t.idempotency_keys
        self.conn.execute(
            k.delete().where(k.c.principal_id == caller, k.c.key == key, k.c.status_code.is_(None))
        )

    def take_over_stale(
        self, caller: str, key: str, request_hash: str, now: datetime, stale_before: datetime
    ) -> bool:
        k = t.idempotency_keys
        result = self.conn.execute(
            k.update()
            .where(
                k.c.principal_id == caller,
                k.c.key == key,
                k.c.request_hash == request_hash,
                k.c.status_code.is_(None),
                k.c.created_at < stale_before,
            )
            .values(created_at=now)
        )
        return result.rowcount == 1
