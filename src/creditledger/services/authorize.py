"""May this team make another request? (POST /v1/authorize)

The decision needs the team's billing state, its grants, its custom prices and the
price book. The team's grants and custom prices are cached in this process per team
and reused while the team's ``revision`` is unchanged; the revision is bumped in the
database by every write that can change a decision. The price book is the process's
copy that usage pricing uses, checked against the newest version id, which comes in
the same read as the team row: one primary-key read keeps every process correct.
Requests per minute are counted by the shared rate limiter (Redis when configured,
so all processes share it).

An authorization with an ``estimate`` places a hold (``domain.holds``) in the shared
hold book when it is allowed: the book checks the team's open holds against its usable
credit and adds the hold in one atomic step, so simultaneous requests can not together
take more than the credit. A hold ends when its usage is charged
(:func:`services.usage.ingest_usage`), by :func:`release_hold`, or when it expires.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import msgspec

from creditledger.domain.accounts import BillingMode, Principal, Team, TeamReads
from creditledger.domain.availability import usable_changes_after, usable_credit
from creditledger.domain.errors import (
    InvalidRequest,
    NotFound,
    PricingError,
    ServiceUnavailable,
    UnknownPrice,
)
from creditledger.domain.grants import Grant, UsageScope
from creditledger.domain.holds import (
    Estimate,
    Hold,
    check_request_id,
    fits,
    hold_cap,
    hold_expiry,
    left_after_holds,
    read_estimate,
)
from creditledger.domain.ids import RANDOM_BYTES, make_id
from creditledger.domain.money import Nanos
from creditledger.domain.pricing import (
    PriceBook,
    TeamPricing,
    charge_for,
    check_billable,
    effective,
    effective_team,
    prices_change_after,
)
from creditledger.domain.tiers import DEFAULT_TIERS, Tier, tier_for
from creditledger.domain.values import Value
from creditledger.services.context import Context
from creditledger.services.memo import keep
from creditledger.services.ports import ChangeCounter, ChangeFeed
from creditledger.services.tokens import authenticate, hash_token
from creditledger.services.usage import require_service

log = logging.getLogger(__name__)

RATE_WINDOW_SECONDS = 60


class Decision(Value, frozen=True):
    allowed: bool
    reason: str
    tier: Tier
    available: int
    """Credit usable for this usage, less the team's open holds (this one included)."""
    retry_after_seconds: int | None = None
    hold: Hold | None = None


@dataclass(frozen=True, slots=True)
class CreditDecision:
    """What the team's credit and tier say, before pricing and the rate limit."""

    tier: Tier
    available: Nanos
    """Credit usable for this usage now."""
    allowed: bool
    """Pay-as-you-go, or some usable credit left."""


def decide(
    team: Team,
    grants: list[Grant],
    usage: UsageScope,
    at: datetime,
    tiers: tuple[Tier, ...] = DEFAULT_TIERS,
) -> CreditDecision:
    """The credit side of an authorization: tier, usable credit, and whether it allows."""
    available = usable_credit(grants, usage, at)
    return CreditDecision(
        tier=tier_for(team.lifetime_paid, team.tier_level_override, tiers),
        available=available,
        allowed=team.billing_mode is BillingMode.PAY_AS_YOU_GO or available > 0,
    )


def refusal_for_pricing(
    usage: UsageScope, books: list[PriceBook], team_pricing: list[TeamPricing], at: datetime
) -> str | None:
    """``unknown_product`` or ``unknown_model`` when usage priced at ``at`` would be
    rejected (the rule of usage pricing, :func:`check_billable`); None when billable."""
    try:
        check_billable(
            usage.product,
            usage.model,
            usage.gpu,
            effective(books, at),
            effective_team(team_pricing, at),
        )
    except UnknownPrice as exc:
        return exc.code
    return None


@dataclass(frozen=True, slots=True)
class _TeamState:
    revision: int
    grants: list[Grant]
    pricing: list[TeamPricing]


@dataclass(slots=True)
class _Verdict:
    """What a decision for one team and usage works out from the team's credit and
    prices, before holds and the rate limit: it stands while the team, its state and
    the price books are the same objects and the clock is before ``until`` (a grant
    starts or ends, a price takes effect). Decisions with and without an estimate share
    it. ``plain`` is the last decision without an estimate and the open holds it saw:
    it is given again while the holds are the same amount."""

    team: Team
    state: _TeamState
    books: list[PriceBook]
    until: datetime | None
    credit: CreditDecision
    unbillable: str | None
    plain: tuple[Nanos | None, Decision] | None = None


def _earliest(*moments: datetime | None) -> datetime | None:
    return min((m for m in moments if m is not None), default=None)


class _Fresh(Value, frozen=True):
    """A team as last read, trusted without a read while the change feed is live (a
    struct: a renewal re-stamps a thousand of them under the lock at once)."""

    team: Team
    state: _TeamState
    books: list[PriceBook]
    read_at: float
    version: int = 0
    """The change counter's value before it was read (SQLite)."""
    stale_at: float | None = None
    """When a notice said the team changed; a refresh is on its way."""
    renewing: bool = False
    """Near the end of its trust, a refresh was asked for."""


TRUST_SECONDS = 10.0
"""The bounded periodic check: a team read longer ago than this is read again even
when no notice came, so a lost notice can only delay a change, never hide it."""
RENEW_SECONDS = 0.8 * TRUST_SECONDS
RENEW_GATHER_SECONDS = 0.5
"""How long the first renewal waits for the others: teams read together come due
together, and one read of their revisions renews them all."""
STALE_SECONDS = 0.1
"""How long a decision without a hold may still use a team that a notice marked
changed while its refresh is read in the background: the staleness bound. A decision
that places a hold never does: it reads the team when it has changed."""
MAX_FRESH_TEAMS = 100_000
STRIPES = 4096
REFRESH_BATCH = 1_000
MAX_PRINCIPALS = 10_000
MAX_VERDICTS = 100_000


class Authorizer:
    """Decisions for the gateway. With a change feed (PostgreSQL's notices, or SQLite's
    data version read by the decisions), teams and service tokens are served from memory
    while the feed is live and each entry is younger than :data:`TRUST_SECONDS`. A
    notice drops the tokens it names at once; a team it names is read again in the
    background, and until then only decisions without a hold, for at most
    :data:`STALE_SECONDS`, use what was known. SQLite's notice, ``?``, names nothing: it
    marks everything in memory as unchecked, and the background check reads the
    revisions of every team held (and the tokens) to find what moved. With a change
    counter only (SQLite without the feed), they are served from memory while the
    counter has not moved since they were read. Without either (or the feed down),
    every decision reads the team's revision."""

    def __init__(
        self,
        ctx: Context,
        feed: Callable[[Callable[[str], None]], ChangeFeed] | None = None,
        counter: ChangeCounter | None = None,
    ) -> None:
        self.ctx = ctx
        self.counter = counter
        self._hold_lifetime = timedelta(seconds=ctx.settings.hold_seconds)
        self._cache: dict[str, _TeamState] = {}
        self._fresh: OrderedDict[str, _Fresh] = OrderedDict()
        self._principals: OrderedDict[str, tuple[int, Principal, float]] = OrderedDict()
        """By token: the memory version, the principal, when it was read."""
        self._by_client: dict[tuple[str, str], Principal] = {}
        self._verdicts: dict[tuple[str, str, str | None, str | None], _Verdict] = {}
        """By team and usage (a plain tuple: hashed and compared without a call)."""
        self._generation = 0
        """Moved by every notice that is not about one team."""
        self._stripes = [0] * STRIPES
        """Moved by the notices about the teams of each stripe (by hash of the id)."""
        self._lock = threading.Lock()
        self._local = ctx.settings.redis_url is None
        self._refresh: set[str] = set()
        self._renewals: set[str] = set()
        """Teams near the end of their trust, renewed together after a short gathering."""
        self._refresh_wanted = threading.Condition(self._lock)
        self._check_wanted = False
        """A ``?`` came: the refresher checks everything memory holds."""
        self._unchecked_at: float | None = None
        """When the oldest ``?`` not yet checked came: entries read before it are used
        only as :data:`STALE_SECONDS` allows."""
        self._pending_at: float | None = None
        """When the first ``?`` since the running check began came."""
        self._closed = False
        self.feed = None if feed is None else feed(self.changed)
        if self.feed is not None:
            threading.Thread(target=self._refresher, name="authorize-refresh", daemon=True).start()
            self.feed.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._refresh_wanted.notify()
        if self.feed is not None:
            self.feed.stop()
        if self.counter is not None:
            self.counter.close()

    def changed(self, notice: str) -> None:
        """A notice from the feed: forget what it names (everything for ``*``)."""
        with self._lock:
            if notice.startswith("team:"):
                team_id = notice.removeprefix("team:")
                self._stripes[hash(team_id) % STRIPES] += 1
                fresh = self._fresh.get(team_id)
                if fresh is not None:
                    if fresh.stale_at is None:
                        self._fresh[team_id] = msgspec.structs.replace(
                            fresh, stale_at=time.monotonic()
                        )
                    self._refresh.add(team_id)
                    self._refresh_wanted.notify()
            elif notice == "?":
                now = time.monotonic()
                if self._unchecked_at is None:
                    self._unchecked_at = now
                if self._pending_at is None:
                    self._pending_at = now
                self._check_wanted = True
                self._refresh_wanted.notify()
            elif notice == "tokens":
                self._generation += 1
                self._principals.clear()
                self._by_client.clear()
            else:
                self._generation += 1
                self._fresh.clear()
                self._principals.clear()
                self._by_client.clear()

    def _version(self) -> int | None:
        """What memory is checked against: 0 while the feed is live (its notices drop
        stale entries), the change counter's value, or None (no memory to trust)."""
        feed = self.feed
        if feed is not None:
            feed.poll()
            if feed.live:
                return 0
        return None if self.counter is None else self.counter()

    def authenticate(self, token: str | None, client: str | None = None) -> Principal:
        """:func:`services.tokens.authenticate`, from memory while nothing changed."""
        version = self._version() if token and len(token) <= 200 else None
        if version is None or not token:
            return authenticate(self.ctx, token, client)
        cached = self._principals.get(token)
        if cached is not None and self._usable(cached, version):
            known = cached[1]
        else:
            with self._lock:
                generation = self._generation
            read_at = time.monotonic()
            known = authenticate(self.ctx, token)
            with self._lock:
                if generation == self._generation:
                    self._principals[token] = (version, known, read_at)
                    while len(self._principals) > MAX_PRINCIPALS:
                        self._principals.popitem(last=False)
        return known if client is None else self._with_client(token, known, client)

    def _usable(self, cached: tuple[int, Principal, float], version: int) -> bool:
        """May a principal kept in memory answer for its token now?"""
        if cached[0] != version:
            return False
        return version != 0 or self._checked(cached[2], exact=False)

    def _checked(self, read_at: float, exact: bool) -> bool:
        """Was something read at ``read_at`` checked since the last ``?``, or may it
        still be used unchecked (no hold, within :data:`STALE_SECONDS`)?"""
        unchecked = self._unchecked_at
        if unchecked is None or read_at >= unchecked:
            return True
        return not exact and time.monotonic() - unchecked <= STALE_SECONDS

    def _refresher(self) -> None:
        """Read again the teams that notices marked changed, up to
        :data:`REFRESH_BATCH` at a time in one read each of teams, grants and prices;
        after a ``?``, check everything memory holds."""
        while True:
            with self._lock:
                while (
                    not self._refresh
                    and not self._renewals
                    and not self._check_wanted
                    and not self._closed
                ):
                    self._refresh_wanted.wait()
                if self._check_wanted and not self._closed:
                    self._check_wanted = False
                    self._pending_at = None
                    team_ids = list(self._fresh)
                    tokens = list(self._principals)
                    check = True
                else:
                    check = False
            if check:
                self._check(team_ids, tokens)
                continue
            with self._lock:
                if not self._refresh and not self._renewals and not self._closed:
                    continue
                if not self._refresh and not self._closed:
                    # Only renewals: they have until their trust runs out, so the teams
                    # read together are renewed together, in one read, not one by one.
                    self._refresh_wanted.wait(RENEW_GATHER_SECONDS)
                if self._closed:
                    return
                team_ids = [
                    self._refresh.pop() for _ in range(min(REFRESH_BATCH, len(self._refresh)))
                ]
                team_ids += [
                    self._renewals.pop()
                    for _ in range(min(REFRESH_BATCH - len(team_ids), len(self._renewals)))
                ]
            try:
                self._reload_many(team_ids)
            except Exception:  # the next decisions read them themselves
                log.warning("authorize: refreshing %d teams failed", len(team_ids), exc_info=True)
                with self._lock:
                    for team_id in team_ids:
                        self._fresh.pop(team_id, None)

    def _check(self, team_ids: list[str], tokens: list[str]) -> None:
        """Check what memory held when a ``?`` came: the teams' revisions (a team whose
        revision moved is read again) and whether the tokens are still live. Until it
        ends, entries read before the ``?`` are used only as :meth:`_checked` allows."""
        try:
            for start in range(0, len(team_ids), REFRESH_BATCH):
                self._reload_many(team_ids[start : start + REFRESH_BATCH])
            hashes = {hash_token(token): token for token in tokens}
            with self.ctx.uow(write=False) as uow:
                live = uow.tokens.live_among(list(hashes))
            revoked = len(live) < len(hashes)
        except Exception:  # forget what could not be checked: decisions read it again
            log.warning("authorize: checking %d teams failed", len(team_ids), exc_info=True)
            with self._lock:
                for team_id in team_ids:
                    self._fresh.pop(team_id, None)
            revoked = True
        with self._lock:
            if revoked:
                self._generation += 1
                self._principals.clear()
                self._by_client.clear()
            self._unchecked_at = self._pending_at

    def _reload_many(self, team_ids: list[str]) -> None:
        """Read the teams again; a team whose revision has not moved (a renewal that
        found no change) costs its revision only, not its grants and prices."""
        stripes = [hash(team_id) % STRIPES for team_id in team_ids]
        with self._lock:
            generation = self._generation
            seen = [self._stripes[stripe] for stripe in stripes]
            known = [self._fresh.get(team_id) for team_id in team_ids]
        read_at = time.monotonic()
        with self.ctx.uow(write=False) as uow:
            revisions, price_version = uow.teams.revisions_with_price_version(team_ids)
            books = self.ctx.price_books.at_version(uow, price_version)
            unchanged = {
                team_id
                for team_id, fresh in zip(team_ids, known, strict=True)
                if fresh is not None
                and fresh.stale_at is None
                and fresh.books is books
                and fresh.team.revision == revisions.get(team_id)
            }
            changed = [team_id for team_id in revisions if team_id not in unchanged]
            reads = TeamReads({}, None, {}, {})
            if changed:
                reads = uow.read_teams(changed)
                if reads.price_version is not None:
                    books = self.ctx.price_books.at_version(uow, reads.price_version)
            teams, grants, pricing = reads.teams, reads.grants, reads.pricing
        with self._lock:
            for team_id, stripe, before, fresh in zip(team_ids, stripes, seen, known, strict=True):
                if generation != self._generation or team_id not in revisions:
                    self._fresh.pop(team_id, None)
                    continue
                if self._stripes[stripe] != before:  # a notice came while it was read
                    self._refresh.add(team_id)
                    self._refresh_wanted.notify()
                    continue
                if team_id in unchanged:
                    if fresh is not None and self._fresh.get(team_id) is fresh:
                        self._fresh[team_id] = msgspec.structs.replace(
                            fresh, read_at=read_at, renewing=False
                        )
                    continue
                team = teams.get(team_id)
                if team is None:
                    self._fresh.pop(team_id, None)
                    continue
                state = _TeamState(team.revision, grants[team_id], pricing.get(team_id, []))
                self._cache[team_id] = state
                if team_id in self._fresh:
                    self._fresh[team_id] = _Fresh(team, state, books, read_at, 0)

    def in_memory(self, token: str, team_id: str, exact: bool = False) -> bool:
        """Can :meth:`request` answer for this token and team without a read or a
        network call? True while the feed is live, both are cached and fresh, and the
        rate limits and holds are kept in this process (no Redis)."""
        return self._memory(token, team_id, exact) is not None

    def _memory(self, token: str, team_id: str, exact: bool) -> tuple[Principal, _Fresh] | None:
        """The token's principal and the team's state, when both may be used as known
        and the decision needs no network call (no Redis)."""
        known = self._known(token) if self._local else None
        if known is None:
            return None
        version, principal = known
        fresh = self._fresh.get(team_id)
        if fresh is None or not self._trusted(fresh, version, exact):
            return None
        return principal, fresh

    def _known(self, token: str) -> tuple[int, Principal] | None:
        """The memory version and the token's principal, when memory may be trusted and
        holds the token as of that version."""
        version = self._version()
        cached = self._principals.get(token)
        if version is None or cached is None or not self._usable(cached, version):
            return None
        return version, cached[1]

    def _trusted(self, fresh: _Fresh | None, version: int, exact: bool) -> bool:
        """May a decision use ``fresh``? ``exact``: one that places a hold."""
        if fresh is None or fresh.version != version:
            return False
        if version != 0:
            return True
        if not self._checked(fresh.read_at, exact):
            return False
        now = time.monotonic()
        if fresh.stale_at is not None and (exact or now - fresh.stale_at > STALE_SECONDS):
            return False
        age = now - fresh.read_at
        if age > RENEW_SECONDS and fresh.stale_at is None and not fresh.renewing:
            # Renewed in the background before its trust runs out, so teams read at the
            # same moment do not all fall back to reads on the request path together.
            with self._lock:
                current = self._fresh.get(fresh.team.id)
                if current is fresh:
                    self._fresh[fresh.team.id] = msgspec.structs.replace(fresh, renewing=True)
                    if not self._renewals:  # the refresher gathers the ones that follow
                        self._refresh_wanted.notify()
                    self._renewals.add(fresh.team.id)
        return age < TRUST_SECONDS

    def known_principal(self, token: str | None, client: str | None) -> Principal | None:
        """The token's principal from memory, or None when it must be read."""
        known = self._known(token) if token else None
        if known is None or token is None:
            return None
        principal = known[1]
        return principal if client is None else self._with_client(token, principal, client)

    def request(
        self,
        token: str | None,
        client: str | None,
        team_id: str,
        usage: UsageScope,
        request_id: object = None,
        estimate: object = None,
    ) -> Decision:
        """A gateway's request as it comes: authenticate its token, then decide."""
        caller = self.authenticate(token, client)
        return self.authorize(caller, team_id, usage, request_id, estimate)

    def authorize(
        self,
        principal: Principal,
        team_id: str,
        usage: UsageScope,
        request_id: object = None,
        estimate: object = None,
    ) -> Decision:
        """The decision for one request; with an ``estimate``, an allowed one holds its
        cost until the usage event ``request_id`` is charged, a release, or expiry."""
        require_service(principal)
        request_id = check_request_id(request_id)
        wanted = None if estimate is None else read_estimate(estimate)
        team, state, books = self._load(team_id, exact=wanted is not None)
        return self._decide(team, state, books, usage, request_id, wanted)

    def from_memory(
        self,
        token: str,
        client: str | None,
        team_id: str,
        usage: UsageScope,
        request_id: object = None,
        estimate: object = None,
    ) -> Decision | None:
        """:meth:`request` when memory can answer it without a read or a network call
        (:meth:`in_memory`), else None: the caller then calls :meth:`request` where
        blocking is allowed."""
        known = self._memory(token, team_id, exact=estimate is not None)
        if known is None:
            return None
        principal, fresh = known
        if client is not None:
            principal = self._with_client(token, principal, client)
        require_service(principal)
        request_id = check_request_id(request_id)
        wanted = None if estimate is None else read_estimate(estimate)
        return self._decide(fresh.team, fresh.state, fresh.books, usage, request_id, wanted)

    def _with_client(self, token: str, principal: Principal, client: str) -> Principal:
        """The principal as seen from ``client`` (kept: gateways call from few addresses;
        a token's principal changes only by its revocation, which clears this)."""
        key = (token, client)
        known = self._by_client.get(key)
        if known is None:
            known = keep(self._by_client, key, replace(principal, client=client), MAX_PRINCIPALS)
        return known

    def _standing(
        self,
        key: tuple[str, str, str | None, str | None],
        team: Team,
        state: _TeamState,
        books: list[PriceBook],
        now: datetime,
    ) -> _Verdict | None:
        """The verdict kept for ``key`` while what it was worked out from still stands
        (its holds aside: the caller compares them)."""
        known = self._verdicts.get(key)
        if (
            known is not None
            and known.state is state
            and known.team is team
            and known.books is books
            and (known.until is None or now < known.until)
        ):
            return known
        return None

    def _decide(
        self,
        team: Team,
        state: _TeamState,
        books: list[PriceBook],
        usage: UsageScope,
        request_id: str | None,
        wanted: Estimate | None,
    ) -> Decision:
        team_id = team.id
        now = self.ctx.clock.now()
        key = (team_id, usage.product, usage.model, usage.gpu)
        known = self._standing(key, team, state, books, now)
        if known is None:
            known = keep(
                self._verdicts,
                key,
                _Verdict(
                    team,
                    state,
                    books,
                    _earliest(
                        usable_changes_after(state.grants, now),
                        prices_change_after(books, state.pricing, now),
                    ),
                    decide(team, state.grants, usage, now, self.ctx.settings.tier_table),
                    refusal_for_pricing(usage, books, state.pricing, now),
                ),
                MAX_VERDICTS,
            )
        elif wanted is None:
            plain = known.plain
            if plain is not None and self._held(team_id, now) == plain[0]:
                return self._limited(plain[1], team_id)
        credit, unbillable = known.credit, known.unbillable
        tier = credit.tier
        cap = hold_cap(team.billing_mode, credit.available)
        if wanted is not None and unbillable is None:
            cost = _estimated_cost(wanted, usage, books, state, now)
            return self._hold(team_id, tier, credit.available, cap, cost, request_id, now)
        held = self._held(team_id, now)
        left = left_after_holds(credit.available, held or 0)
        if unbillable is not None:
            verdict = Decision(False, unbillable, tier, left)
        elif not fits(held or 0, 0, cap):
            verdict = Decision(False, "insufficient_credits", tier, left)
        else:
            verdict = Decision(True, "ok", tier, left)
        if wanted is None:
            known.plain = (held, verdict)
        return self._limited(verdict, team_id)

    def _hold(
        self,
        team_id: str,
        tier: Tier,
        usable: Nanos,
        cap: Nanos | None,
        cost: Nanos,
        request_id: str | None,
        now: datetime,
    ) -> Decision:
        """A decision with an estimate: the hold book places the hold only if it fits
        (``domain.holds.fits``), in the same atomic step that reads the team's open holds,
        so one call decides and holds. A request the rate limit then refuses gives its
        new hold back at once."""
        hold = Hold(
            id=make_id("hold", int(now.timestamp() * 1000), os.urandom(RANDOM_BYTES)),
            team_id=team_id,
            amount=cost,
            expires_at=hold_expiry(now, self._hold_lifetime),
            request_id=request_id,
        )
        try:
            placement = self.ctx.holds.place(hold, cap, now)
        except ServiceUnavailable:
            # Without the hold book, pay-as-you-go is decided on credit alone; a
            # prepaid-only request that needs a hold can not be (docs/decisions/0017).
            if cap is not None:
                raise
            return self._limited(Decision(True, "ok", tier, usable), team_id)
        left = left_after_holds(usable, placement.held)
        placed = placement.hold
        if placed is None:
            return Decision(False, "insufficient_credits", tier, left)
        new = placed.id == hold.id
        after = left_after_holds(left, placed.amount) if new else left
        decision = self._limited(Decision(True, "ok", tier, after, hold=placed), team_id)
        if decision.allowed:
            return decision
        if new:
            try:
                self.ctx.holds.release(hold.id, now)
            except ServiceUnavailable:  # it ends by itself when its time runs out
                log.warning("authorize: a hold refused by the rate limit stays until it expires")
        return Decision(False, decision.reason, tier, left, decision.retry_after_seconds)

    def _held(self, team_id: str, now: datetime) -> Nanos | None:
        """The team's open holds; None when the hold book is out of reach: a decision
        that places no hold goes on from credit alone (docs/decisions/0017)."""
        try:
            return self.ctx.holds.open_total(team_id, now)
        except ServiceUnavailable:
            return None

    def _limited(self, verdict: Decision, team_id: str) -> Decision:
        """``verdict``, or ``rate_limited`` when it allows a request over the team's rate."""
        if not verdict.allowed:
            return verdict
        limit = verdict.tier.requests_per_minute
        limiter = self.ctx.request_limiter
        key = f"authorize:{team_id}"
        if limiter.hit(key, limit, RATE_WINDOW_SECONDS):
            return verdict
        retry = limiter.retry_after(key, limit, RATE_WINDOW_SECONDS)
        return Decision(False, "rate_limited", verdict.tier, verdict.available, retry)

    def _load(self, team_id: str, exact: bool) -> tuple[Team, _TeamState, list[PriceBook]]:
        version = self._version()
        if version is None:
            return self._read(team_id)
        fresh = self._fresh.get(team_id)
        if fresh is not None and self._trusted(fresh, version, exact):
            return fresh.team, fresh.state, fresh.books
        return self._reload(team_id, version)

    def _reload(self, team_id: str, version: int) -> tuple[Team, _TeamState, list[PriceBook]]:
        """Read the team and keep it, unless a notice came while it was read."""
        stripe = hash(team_id) % STRIPES
        with self._lock:
            seen = (self._generation, self._stripes[stripe])
        read_at = time.monotonic()
        team, state, books = self._read(team_id)
        with self._lock:
            if seen[0] == self._generation:
                # A notice about this team while it was read: keep it as changed at the
                # read's start, and have it read again in the background.
                noticed = seen[1] != self._stripes[stripe]
                stale_at = read_at if noticed else None
                self._fresh[team_id] = _Fresh(team, state, books, read_at, version, stale_at)
                if noticed:
                    self._refresh.add(team_id)
                    self._refresh_wanted.notify()
                self._fresh.move_to_end(team_id)
                while len(self._fresh) > MAX_FRESH_TEAMS:
                    self._fresh.popitem(last=False)
        return team, state, books

    def _read(self, team_id: str) -> tuple[Team, _TeamState, list[PriceBook]]:
        """The team, its grants and prices in one read (one round trip on PostgreSQL);
        the state kept from before when its revision has not moved, so the decisions
        kept with it still apply."""
        with self.ctx.uow(write=False) as uow:
            reads = uow.read_teams([team_id])
            team = reads.teams.get(team_id)
            if team is None or reads.price_version is None:
                raise NotFound("No team with this id.")
            books = self.ctx.price_books.at_version(uow, reads.price_version)
        cached = self._cache.get(team_id)
        if cached is not None and cached.revision == team.revision:
            return team, cached, books
        state = _TeamState(team.revision, reads.grants[team_id], reads.pricing.get(team_id, []))
        with self._lock:
            self._cache[team_id] = state
        return team, state, books


def _estimated_cost(
    estimate: Estimate,
    usage: UsageScope,
    books: list[PriceBook],
    state: _TeamState,
    at: datetime,
) -> Nanos:
    """The estimate's amount, or its quantities priced exactly as their usage will be."""
    if estimate.amount is not None:
        return estimate.amount
    assert estimate.quantities is not None
    try:
        return charge_for(
            estimate.quantities,
            usage.product,
            usage.model or "",
            usage.gpu,
            effective(books, at),
            effective_team(state.pricing, at),
        )
    except PricingError as exc:
        raise InvalidRequest(
            f"`estimate` can not be priced: {exc.message}", param="estimate.quantities"
        ) from None


def release_hold(ctx: Context, principal: Principal, hold_id: str) -> bool:
    """End a hold early (the request it was for did not happen). True when this call
    ended it; False when it had ended already (or never existed): a hold ends once."""
    require_service(principal)
    if len(hold_id) > 64:
        return False
    return ctx.holds.release(hold_id, ctx.clock.now()) is not None
