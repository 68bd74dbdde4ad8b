"""Throttle keys (domain/throttle.py), the audit log's and the member list's cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from creditledger.domain import audit
from creditledger.domain.accounts import (
    Member,
    Role,
    decode_member_cursor,
    encode_member_cursor,
    login_throttled_message,
)
from creditledger.domain.cursors import CursorCodec
from creditledger.domain.errors import InvalidCursor
from creditledger.domain.history import encode_cursor as history_cursor
from creditledger.domain.promo_codes import too_many_attempts_message
from creditledger.domain.throttle import Counted, address_key, budget_key, digest


def test_an_ipv6_client_is_counted_by_its_64_network() -> None:
    one = address_key("2001:db8:aaaa:bbbb:1::1")
    assert one == address_key("2001:db8:aaaa:bbbb:ffff:ffff:ffff:ffff") == "2001:db8:aaaa:bbbb::/64"
    assert one != address_key("2001:db8:aaaa:bbbc::1")


def test_an_ipv4_client_is_counted_alone_and_the_same_when_mapped_into_ipv6() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("203.0.113.8") != address_key("203.0.113.7")


def test_a_client_that_is_not_an_ip_address_is_still_counted_on_its_own() -> None:
    assert address_key("testclient") == address_key("testclient") != address_key("other")


def test_keys_hold_no_email_in_clear() -> None:
    key = budget_key("login-failures", Counted.ACCOUNT, digest("ada@example.com"))
    assert "ada" not in key and key.startswith("login-failures:account:")
    assert budget_key("x", Counted.ADDRESS, "2001:db8::1") == "x:address:2001:db8::/64"


def test_the_login_refusal_says_nothing_about_the_account() -> None:
    message = login_throttled_message(900)
    assert "15 minutes" in message
    assert "exist" not in message and "locked" not in message


@pytest.mark.parametrize(
    ("counted", "start"),
    [
        (Counted.TEAM, "Your team has entered 10"),
        (Counted.USER, "You have entered 10"),
        (Counted.ADDRESS, "Your network has entered 10"),
    ],
)
def test_a_promo_refusal_says_whose_budget_ran_out(counted: Counted, start: str) -> None:
    assert too_many_attempts_message(61, counted, 10).startswith(start)
    assert too_many_attempts_message(61, counted, 10).endswith("try again in 2 minutes.")


CODEC = CursorCodec("k" * 43)
TEAM = "team_0123456789abcdef0123456789abcdef"


def test_an_audit_cursor_round_trips_for_its_filter_only() -> None:
    mine = audit.AuditFilter(team_id=TEAM)
    cursor = audit.encode_cursor(CODEC, mine, 42)
    assert audit.decode_cursor(CODEC, mine, cursor) == 42
    assert "42" not in cursor
    for other in (audit.AuditFilter(), audit.AuditFilter(team_id=TEAM, actor="tok_1")):
        with pytest.raises(InvalidCursor):
            audit.decode_cursor(CODEC, other, cursor)
    with pytest.raises(InvalidCursor):
        audit.decode_cursor(CODEC, mine, history_cursor(CODEC, TEAM, 42))


def test_a_member_cursor_round_trips_to_the_microsecond_for_its_team_only() -> None:
    joined = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)
    member = Member("user_0193a4c2e8f04b6d2c9a7e1f05", "ada@example.com", Role.ADMIN, joined)
    cursor = encode_member_cursor(CODEC, TEAM, member)
    assert decode_member_cursor(CODEC, TEAM, cursor) == (joined, member.user_id)
    assert member.user_id not in cursor
    with pytest.raises(InvalidCursor):
        decode_member_cursor(CODEC, "team_other", cursor)
