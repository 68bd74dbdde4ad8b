"""Accounts: emails, passwords, team names, ids, and the last-admin rule."""

from __future__ import annotations

import pytest

from creditledger.domain.accounts import (
    Member,
    Role,
    admins_left_after,
    check_password,
    check_team_name,
    normalise_email,
)
from creditledger.domain.errors import InvalidRequest
from creditledger.domain.ids import is_id, make_id
from tests.helpers import at


def test_emails_are_trimmed_and_lowercased() -> None:
    assert normalise_email("  Ada@Example.COM ") == "ada@example.com"


@pytest.mark.parametrize(
    "email",
    [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "ada lovelace@example.com",
        "ada@@example.com",
        "ada\x00@example.com",
        "ada\x7f@example.com",
        "adä@example.com",
        "a" * 65 + "@example.com",
    ],
)
def test_a_malformed_email_is_refused(email: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        normalise_email(email)
    assert caught.value.param == "email"


@pytest.mark.parametrize("password", ["short", "x" * 9, "x" * 257])
def test_a_password_outside_10_to_256_characters_is_refused(password: str) -> None:
    with pytest.raises(InvalidRequest):
        check_password(password)


def test_a_password_of_10_characters_is_enough() -> None:
    check_password("x" * 10)


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "tab\tname", "nul\x00"])
def test_a_team_name_must_be_1_to_200_printable_characters(name: str) -> None:
    with pytest.raises(InvalidRequest):
        check_team_name(name)


def test_a_team_name_is_trimmed() -> None:
    assert check_team_name("  Research  ") == "Research"


def members(*roles: Role) -> list[Member]:
    return [
        Member(f"user_{i}", f"u{i}@example.com", r, at("2026-11-01")) for i, r in enumerate(roles)
    ]


def test_demoting_or_removing_the_only_admin_leaves_none() -> None:
    team = members(Role.ADMIN, Role.MEMBER)
    assert admins_left_after(team, "user_0", Role.MEMBER) == 0
    assert admins_left_after(team, "user_0", None) == 0


def test_with_two_admins_either_may_step_down() -> None:
    team = members(Role.ADMIN, Role.ADMIN)
    assert admins_left_after(team, "user_0", None) == 1
    assert admins_left_after(team, "user_1", Role.MEMBER) == 1


def test_promoting_a_member_adds_an_admin() -> None:
    assert admins_left_after(members(Role.ADMIN, Role.MEMBER), "user_1", Role.ADMIN) == 2


def test_ids_carry_their_prefix_and_sort_by_creation_time() -> None:
    earlier = make_id("grant", 1_000, b"\xff" * 10)
    later = make_id("grant", 1_001, bytes(10))
    assert earlier.startswith("grant_") and len(earlier) == len("grant_") + 32
    assert earlier < later


def test_ids_differ_in_their_random_part() -> None:
    assert make_id("team", 5, bytes(9) + b"\x01") != make_id("team", 5, bytes(9) + b"\x02")


@pytest.mark.parametrize(
    ("value", "prefix", "ok"),
    [
        (make_id("team", 5, bytes(9) + b"\x01"), "team", True),
        (make_id("team", 5, bytes(9) + b"\x01"), "grant", False),
        ("team_", "team", False),
        ("team_ABC", "team", False),
        ("team_abc\x00", "team", False),
        ("team_" + "a" * 33, "team", False),
        ("../team_abc", "team", False),
        ("", "team", False),
    ],
)
def test_only_well_formed_ids_are_looked_up(value: str, prefix: str, ok: bool) -> None:
    assert is_id(value, prefix) is ok


def test_an_id_takes_exactly_its_random_bytes() -> None:
    with pytest.raises(ValueError, match="10 random bytes"):
        make_id("team", 5, bytes(9))
