"""Page cursors (domain/cursors.py) and credit-history cursors: round-tripping, opaque,
bound to one team's list, and anything forged, changed or foreign refused."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditledger.domain.cursors import MAX_SEQ, CursorCodec
from creditledger.domain.errors import InvalidCursor
from creditledger.domain.history import HistoryEntry, decode_cursor, encode_cursor
from creditledger.domain.ledger import EntryType
from tests.helpers import at

CODEC = CursorCodec("s" * 43)
TEAM = "team_0123456789abcdef0123456789abcdef"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@given(st.integers(min_value=0, max_value=MAX_SEQ))
def test_a_cursor_gives_back_the_sequence_it_was_made_from(seq: int) -> None:
    assert decode_cursor(CODEC, TEAM, encode_cursor(CODEC, TEAM, seq)) == seq


@given(st.integers(min_value=0, max_value=MAX_SEQ))
def test_a_cursor_does_not_show_its_sequence(seq: int) -> None:
    cursor = encode_cursor(CODEC, TEAM, seq)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert str(seq).encode() not in raw or seq < 10_000  # short numbers occur by chance
    assert seq.to_bytes(8, "big") not in raw
    assert cursor.replace("-", "").replace("_", "").isalnum()
    assert len(cursor) <= 40


def test_the_same_position_always_gives_the_same_cursor() -> None:
    assert encode_cursor(CODEC, TEAM, 7) == encode_cursor(CursorCodec("s" * 43), TEAM, 7)
    assert encode_cursor(CODEC, TEAM, 7) != encode_cursor(CODEC, TEAM, 8)


def test_a_cursor_is_good_only_for_the_team_and_the_list_it_was_made_for() -> None:
    cursor = encode_cursor(CODEC, TEAM, 42)
    with pytest.raises(InvalidCursor):
        decode_cursor(CODEC, "team_ffffffffffffffffffffffffffffffff", cursor)
    with pytest.raises(InvalidCursor):
        CODEC.open_seq("credits", TEAM, cursor)


def test_a_cursor_made_with_another_databases_secret_is_refused() -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(CODEC, TEAM, encode_cursor(CursorCodec("t" * 43), TEAM, 42))


def _flip(cursor: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[index] ^= 1
    return b64(bytes(raw))


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param("", id="empty"),
        pytest.param("12345", id="plain-number"),
        pytest.param("!!!", id="not-base64"),
        pytest.param(b64(b"h1:5"), id="the-old-readable-form"),
        pytest.param(b64(b"\x00" * 8), id="bare-sequence"),
        pytest.param(b64(b"\x00" * 24), id="zeros-of-the-right-length"),
        pytest.param(_flip(encode_cursor(CODEC, TEAM, 42), 0), id="tag-changed"),
        pytest.param(_flip(encode_cursor(CODEC, TEAM, 42), 20), id="position-changed"),
        pytest.param(encode_cursor(CODEC, TEAM, 42)[:-2], id="truncated"),
        pytest.param(encode_cursor(CODEC, TEAM, 42) + "A", id="extended"),
        pytest.param(encode_cursor(CODEC, TEAM, 42) + "=", id="padded"),
        pytest.param(CODEC.seal("history", TEAM, b"\xff" * 8), id="past-63-bits"),
        pytest.param(CODEC.seal("history", TEAM, b"\x01" * 9), id="not-8-bytes"),
        pytest.param("A" * 201, id="too-long"),
        pytest.param("\x00", id="nul"),
        pytest.param("é", id="non-ascii"),
    ],
)
def test_a_forged_cursor_is_refused(forged: str) -> None:
    with pytest.raises(InvalidCursor) as caught:
        decode_cursor(CODEC, TEAM, forged)
    assert caught.value.param == "cursor"


def test_the_largest_sequence_still_decodes() -> None:
    assert decode_cursor(CODEC, TEAM, encode_cursor(CODEC, TEAM, MAX_SEQ)) == MAX_SEQ


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        CursorCodec("short")


def entry(transaction_id: str, grant_id: str | None) -> HistoryEntry:
    return HistoryEntry(
        seq=1,
        transaction_id=transaction_id,
        type=EntryType.GRANT,
        occurred_at=at("2026-11-24"),
        amount=1,
        grant_id=grant_id,
        kind=None,
        description="",
        balance_after=1,
        reference=None,
    )


def test_history_entry_ids_are_stable_and_differ_per_account_of_a_transaction() -> None:
    assert entry("txn_1", "grant_a").id == entry("txn_1", "grant_a").id
    assert entry("txn_1", "grant_a").id != entry("txn_1", "grant_b").id
    assert entry("txn_1", "grant_a").id != entry("txn_1", None).id
    assert entry("txn_1", "grant_a").id.startswith("entry_")
    assert "txn_1" not in entry("txn_1", "grant_a").id
