"""Decisions from memory: a committed change reaches another process's next decision,
through LISTEN/NOTIFY on PostgreSQL and through SQLite's data version, which moves at
every commit of any connection (watched in a thread, or read per decision without the
feed); a lost feed only falls back to reads."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.clock import FixedClock
from creditledger.adapters.db import tables
from creditledger.adapters.db.changes import PgChangeFeed, SqliteChangeFeed
from creditledger.adapters.holds.memory import MemoryHoldBook
from creditledger.bootstrap import build_context, change_counter, change_feed
from creditledger.domain.accounts import BillingMode, Principal, TokenKind
from creditledger.domain.errors import Unauthenticated
from creditledger.domain.grants import UsageScope
from creditledger.domain.holds import Hold
from creditledger.services import authorize
from creditledger.services.authorize import Authorizer
from creditledger.services.context import Context
from creditledger.services.tokens import create_platform_token
from tests.conftest import make_settings
from tests.helpers import Platform, event, price, set_billing

LLAMA = UsageScope("serverless", "llama")
GATEWAY = Principal(TokenKind.SERVICE, "tok_gateway", name="gateway")
WITHIN_SECONDS = 2.0


@pytest.fixture
def other(database_url: str, clock: FixedClock) -> Iterator[Authorizer]:
    """The Authorizer of another process, listening for changes (PostgreSQL) or
    watching the data version (SQLite)."""
    ctx = build_context(make_settings(database_url, push_changes=True), clock=clock)
    authorizer = Authorizer(ctx, change_feed(ctx.settings), change_counter(ctx.settings))
    assert authorizer.feed is not None and authorizer.feed.live
    yield authorizer
    authorizer.close()
    ctx.uow.dispose()


def until(check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` holds (fails after WITHIN_SECONDS)."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < WITHIN_SECONDS, "the change did not arrive"
        time.sleep(0.005)
    return time.monotonic() - began


def team_with_credit(client: TestClient, ctx: Context, credit: str) -> tuple[Platform, str]:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "tokens", "0.01"))
    team_id = platform.team().team_id
    platform.promo(team_id, credit)
    set_billing(ctx, team_id, BillingMode.PREPAID, tier_override=4)
    return platform, team_id


def test_each_change_reaches_the_other_process_next_decision(
    client: TestClient, ctx: Context, other: Authorizer
) -> None:
    platform, team_id = team_with_credit(client, ctx, "0.05")

    def allowed() -> bool:
        return other.authorize(GATEWAY, team_id, LLAMA).allowed

    # Served from memory once the notices of the set-up have come in: no read of the team.
    until(lambda: allowed() and team_id in other._fresh)
    platform.usage(event(team_id, "e1", ctx.clock.now(), tokens=5))  # uses the credit up
    until(lambda: not allowed())
    grant = platform.promo(team_id, "1.00")  # an operator grant
    until(allowed)
    platform.client.post(
        f"/v1/teams/{team_id}/grants/{grant}/void",
        json={"note": "test"},
        headers={"Authorization": f"Bearer {platform.operator}"},
    ).raise_for_status()
    until(lambda: not allowed())
    set_billing(ctx, team_id, BillingMode.PAY_AS_YOU_GO, tier_override=4)  # a first purchase
    until(allowed)


def test_a_revoked_token_is_refused_at_once(ctx: Context, other: Authorizer) -> None:
    token = create_platform_token(ctx, TokenKind.SERVICE, "gateway 2")
    assert other.authenticate(token).kind is TokenKind.SERVICE
    assert token in other._principals
    with ctx.uow() as uow:
        conn = uow.conn  # type: ignore[attr-defined]
        conn.execute(sa.update(tables.api_tokens).values(revoked_at=ctx.clock.now()))
        uow.commit()

    def refused() -> bool:
        try:
            other.authenticate(token)
        except Unauthenticated:
            return True
        return False

    until(refused)


def test_a_dropped_connection_falls_back_to_reads_and_recovers(
    client: TestClient, ctx: Context, other: Authorizer
) -> None:
    platform, team_id = team_with_credit(client, ctx, "0.05")
    assert other.authorize(GATEWAY, team_id, LLAMA).allowed
    feed = other.feed
    assert isinstance(feed, PgChangeFeed | SqliteChangeFeed)
    feed.drop_connection()
    until(lambda: not feed.live)
    # While deaf, every decision reads the database: a change shows at once.
    platform.usage(event(team_id, "e1", ctx.clock.now(), tokens=5))
    assert not other.authorize(GATEWAY, team_id, LLAMA).allowed
    until(lambda: other.authorize(GATEWAY, team_id, LLAMA) is not None and feed.live)
    platform.promo(team_id, "1.00")
    until(lambda: other.authorize(GATEWAY, team_id, LLAMA).allowed)


def test_on_sqlite_without_the_feed_memory_is_trusted_only_until_the_next_commit(
    client: TestClient, ctx: Context, database_url: str
) -> None:
    if database_url.startswith("postgresql"):
        pytest.skip("the change counter is SQLite's")
    other = Authorizer(ctx, None, change_counter(ctx.settings))
    assert other.counter is not None
    platform, team_id = team_with_credit(client, ctx, "0.05")
    token = platform.service
    assert other.request(token, None, team_id, LLAMA).allowed
    assert other.in_memory(token, team_id)  # the next decision needs no read
    platform.usage(event(team_id, "e1", ctx.clock.now(), tokens=5))  # any commit at all
    assert not other.in_memory(token, team_id)
    assert not other.request(token, None, team_id, LLAMA).allowed
    assert other.in_memory(token, team_id)
    other.close()


def test_on_sqlite_a_commit_is_checked_in_the_background(
    client: TestClient,
    ctx: Context,
    other: Authorizer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The feed's ``?`` (sent when a decision finds the data version moved) names
    nothing: memory is used unchecked by decisions without a hold for
    :data:`STALE_SECONDS` at most, while one read of every revision held finds the teams
    that moved; a team whose revision stayed is not read again."""
    if database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's notices name their teams")
    platform, team_id = team_with_credit(client, ctx, "0.05")
    _, quiet = team_with_credit(client, ctx, "1.00")
    token = platform.service
    assert other.request(token, None, team_id, LLAMA).allowed
    assert other.request(token, None, quiet, LLAMA).allowed
    until(lambda: other.in_memory(token, quiet) and other._unchecked_at is None)
    kept = other._fresh[quiet].state
    checked: list[list[str]] = []
    check = other._check
    monkeypatch.setattr(other, "_check", lambda teams, tokens: checked.append(teams))
    platform.usage(event(team_id, "e1", ctx.clock.now(), tokens=5))  # uses the credit up
    until(lambda: other.in_memory(token, quiet) and bool(checked))
    assert sorted(checked[0]) == sorted([team_id, quiet])
    assert other.in_memory(token, team_id)  # a check may use what was known…
    assert not other.in_memory(token, team_id, exact=True)  # …a hold may not
    time.sleep(authorize.STALE_SECONDS)
    assert not other.in_memory(token, team_id)  # and not past the bound
    monkeypatch.setattr(other, "_check", check)
    check(checked[0], [token])
    assert other.in_memory(token, team_id, exact=True)
    assert not other.request(token, None, team_id, LLAMA).allowed  # the charge is seen
    assert other._fresh[quiet].state is kept  # the quiet team was not read again


def test_on_sqlite_a_revoked_token_found_by_the_check_forgets_every_token(
    ctx: Context, other: Authorizer, database_url: str
) -> None:
    if database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL names the tokens in its notice")
    keep = create_platform_token(ctx, TokenKind.SERVICE, "gateway 3")
    drop = create_platform_token(ctx, TokenKind.SERVICE, "gateway 4")
    for token in (keep, drop):
        other.authenticate(token)
    until(lambda: other.known_principal(drop, None) is not None and other._unchecked_at is None)
    other._check([], [keep])
    assert keep in other._principals  # nothing revoked: kept
    with ctx.uow() as uow:
        uow.conn.execute(  # type: ignore[attr-defined]
            sa.update(tables.api_tokens)
            .where(tables.api_tokens.c.name == "gateway 4")
            .values(revoked_at=ctx.clock.now())
        )
        uow.commit()
    until(lambda: other.authenticate(keep) is not None and drop not in other._principals)
    with pytest.raises(Unauthenticated):
        other.authenticate(drop)
    assert other.authenticate(keep).kind is TokenKind.SERVICE


class _LiveFeed:
    """A feed that is always live and sends only what the test calls ``changed`` with."""

    live = True

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def poll(self) -> None: ...


def test_a_team_marked_changed_serves_decisions_without_a_hold_for_a_bounded_time(
    client: TestClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform, team_id = team_with_credit(client, ctx, "1.00")
    authorizer = Authorizer(ctx, lambda _: _LiveFeed())
    refreshed: list[list[str]] = []
    monkeypatch.setattr(authorizer, "_reload_many", refreshed.append)  # hold the refresh back
    token = platform.service
    assert authorizer.request(token, None, team_id, LLAMA).allowed
    assert authorizer.in_memory(token, team_id) and authorizer.in_memory(token, team_id, True)
    authorizer.changed(f"team:{team_id}")
    until(lambda: refreshed == [[team_id]])  # the refresh was asked for
    assert authorizer.in_memory(token, team_id)  # a check may use what was known…
    assert not authorizer.in_memory(token, team_id, exact=True)  # …a hold may not
    time.sleep(authorize.STALE_SECONDS)
    assert not authorizer.in_memory(token, team_id)  # and not past the bound
    authorizer.close()


def test_the_memory_hold_book_stays_small_when_usage_ends_its_holds(ctx: Context) -> None:
    book = MemoryHoldBook()
    now = ctx.clock.now()
    for n in range(5_000):
        hold = Hold(f"hold_{n}", "team_1", 10, now + timedelta(minutes=10), f"r{n}")
        assert book.place(hold, 10_000, now).hold is hold
        if n % 2:
            assert book.release_requests("team_1", [f"r{n}", f"r{n - 1}"], now) == 2
    assert book.open_total("team_1", now) == 0
    team = book._by_team.get("team_1")
    assert team is None or len(team.expiries) <= 2 * len(team.holds) + 64
    late = Hold("hold_late", "team_1", 30, now + timedelta(seconds=1), "late")
    assert book.place(late, 50, now).hold is late
    assert (
        book.place(Hold("hold_x", "team_1", 30, now + timedelta(minutes=1)), 50, now).hold is None
    )
    assert book.open_total("team_1", now + timedelta(seconds=1)) == 0  # expired on time
    assert book.release("hold_late", now + timedelta(seconds=1)) is None


def test_a_renewal_reads_a_team_again_only_when_its_revision_moved(
    client: TestClient, ctx: Context
) -> None:
    platform, team_id = team_with_credit(client, ctx, "0.05")
    authorizer = Authorizer(ctx, lambda _: _LiveFeed())  # a feed whose notices are all lost
    token = platform.service
    assert authorizer.request(token, None, team_id, LLAMA).allowed
    known = authorizer._fresh[team_id]
    time.sleep(0.01)
    authorizer._reload_many([team_id])  # the periodic check, nothing changed
    renewed = authorizer._fresh[team_id]
    assert renewed.state is known.state and renewed.team is known.team  # revision only
    assert renewed.read_at > known.read_at and not renewed.renewing
    platform.usage(event(team_id, "e1", ctx.clock.now(), tokens=5))  # its notice is lost
    assert authorizer.request(token, None, team_id, LLAMA).allowed  # delayed…
    authorizer._reload_many([team_id])
    assert authorizer._fresh[team_id].state is not known.state
    assert not authorizer.request(token, None, team_id, LLAMA).allowed  # …never hidden
    authorizer.close()


def test_a_decision_kept_in_memory_follows_the_holds_and_the_clock(
    client: TestClient, ctx: Context, other: Authorizer, clock: FixedClock
) -> None:
    platform, team_id = team_with_credit(client, ctx, "1.00")
    platform.promo(team_id, "0.50", expires_at=clock.now() + timedelta(hours=1))

    def check() -> authorize.Decision:
        return other.authorize(GATEWAY, team_id, LLAMA)

    until(lambda: check().available == 1_500_000_000 and team_id in other._fresh)
    kept = check()
    assert check() is kept  # nothing moved: the same decision, not worked out again
    held = other.authorize(GATEWAY, team_id, LLAMA, "r1", {"amount": "0.30"})
    assert held.hold is not None
    assert check().available == 1_200_000_000  # a hold placed since shows at once
    clock.advance(timedelta(seconds=other.ctx.settings.hold_seconds))
    assert check().available == 1_500_000_000  # and its expiry
    clock.advance(timedelta(hours=1))
    assert check().available == 1_000_000_000  # a grant that expired is not counted
    other.authorize(GATEWAY, team_id, LLAMA, "r2", {"amount": "1.00"})
    refused = check()
    assert (refused.allowed, refused.reason, refused.available) == (
        False,
        "insufficient_credits",
        0,
    )


def test_teams_due_for_renewal_together_are_renewed_in_one_read(
    client: TestClient, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform.on(client, ctx)
    platform.put_prices(price("llama", "tokens", "0.01"))
    teams = [platform.team().team_id for _ in range(3)]
    monkeypatch.setattr(authorize, "RENEW_SECONDS", 0.05)
    authorizer = Authorizer(ctx, lambda _: _LiveFeed())
    reads: list[list[str]] = []
    monkeypatch.setattr(authorizer, "_reload_many", reads.append)
    token = platform.service
    for team_id in teams:
        authorizer.request(token, None, team_id, LLAMA)
    time.sleep(0.06)
    for team_id in teams:  # each decision finds its team due for renewal
        assert authorizer.in_memory(token, team_id)
    until(lambda: bool(reads))
    assert [sorted(r) for r in reads] == [sorted(teams)]  # gathered: one read for all
    authorizer.close()


def test_one_statement_moving_many_teams_sends_each_team_once(
    database_url: str, ctx: Context
) -> None:
    """A usage batch moves the revision of all its teams in one statement: the notices
    come in parts of at most 8,000 bytes, and each team reaches the subscriber once."""
    if not database_url.startswith("postgresql"):
        pytest.skip("notices are PostgreSQL's")
    now = ctx.clock.now()
    with ctx.uow() as uow:
        team_ids = [uow.new_id("team") for _ in range(400)]
        for n, team_id in enumerate(team_ids):
            uow.teams.add(team_id, f"team {n}", now)
        uow.commit()
    heard: list[str] = []
    feed = PgChangeFeed(database_url, heard.append)
    feed.start()
    try:
        assert feed.live
        teams = tables.teams
        moved = teams.update().where(teams.c.id.in_(team_ids[:300]))
        engine = sa.create_engine(database_url, poolclass=sa.NullPool)
        with engine.begin() as conn:
            # The revision stays put: nothing to tell.
            conn.execute(moved.values(name=teams.c.name + "!"))
        with engine.begin() as conn:
            conn.execute(moved.values(revision=teams.c.revision + 1))
        engine.dispose()
        expected = sorted(f"team:{team_id}" for team_id in team_ids[:300])
        until(lambda: len([n for n in heard if n.startswith("team")]) >= len(expected))
        time.sleep(0.1)  # nothing more comes
        assert sorted(n for n in heard if n.startswith("team")) == expected
    finally:
        feed.stop()
