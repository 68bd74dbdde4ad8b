"""Credit-history cursors: opaque, round-tripping, and forged ones refused."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditledger.domain.errors import InvalidCursor
from creditledger.domain.history import MAX_SEQ, HistoryEntry, decode_cursor, encode_cursor
from creditledger.domain.ledger import EntryType
from tests.helpers import at


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@given(st.integers(min_value=0, max_value=MAX_SEQ))
def test_a_cursor_gives_back_the_sequence_it_was_made_from(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


def test_a_cursor_is_opaque_url_safe_text() -> None:
    cursor = encode_cursor(12345)
    assert "12345" not in cursor
    assert cursor.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param("", id="empty"),
        pytest.param("12345", id="plain-number"),
        pytest.param("!!!", id="not-base64"),
        pytest.param(b64(b"h2:5"), id="other-version"),
        pytest.param(b64(b"h1:"), id="no-digits"),
        pytest.param(b64(b"h1:-5"), id="negative"),
        pytest.param(b64(b"h1:5x"), id="trailing-garbage"),
        pytest.param(b64(b"h1:\xd9\xa1"), id="unicode-digit"),
        pytest.param(b64(b"h1:" + str(MAX_SEQ + 1).encode()), id="past-64-bits"),
        pytest.param(b64(b"h1:" + b"9" * 21), id="huge"),
        pytest.param(b64(b"h1:" + b"0" * 40 + b"1"), id="padded-with-zeros"),
        pytest.param("\x00", id="nul"),
        pytest.param("é", id="non-ascii"),
    ],
)
def test_a_forged_cursor_is_refused(forged: str) -> None:
    with pytest.raises(InvalidCursor) as caught:
        decode_cursor(forged)
    assert caught.value.param == "cursor"


def test_the_largest_sequence_still_decodes() -> None:
    assert decode_cursor(b64(b"h1:" + str(MAX_SEQ).encode())) == MAX_SEQ


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
