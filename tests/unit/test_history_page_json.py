"""The credit history page is rendered without models (schemas.history_page_json); it
must give exactly the document that ``HistoryPage`` describes and would render."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from creditledger.domain.grants import GrantKind
from creditledger.domain.history import HistoryEntry
from creditledger.domain.ledger import EntryType
from creditledger.entrypoints.api.schemas import HistoryPage, history_page_json, history_public

NANOS = st.integers(min_value=-(2**62), max_value=2**62)
TEXT = st.text(max_size=40)

entries = st.builds(
    HistoryEntry,
    seq=st.integers(min_value=1, max_value=2**63 - 1),
    transaction_id=st.from_regex(r"\Atxn_[0-9a-z]{26}\Z"),
    type=st.sampled_from(EntryType),
    occurred_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    amount=NANOS,
    grant_id=st.none() | st.from_regex(r"\Agrant_[0-9a-z]{26}\Z"),
    kind=st.none() | st.sampled_from(GrantKind),
    description=TEXT,
    balance_after=NANOS,
    reference=st.none() | TEXT,
)


def as_models(items: list[HistoryEntry], cursor: str | None) -> HistoryPage:
    return HistoryPage(data=[history_public(e) for e in items], next_cursor=cursor)


@given(st.lists(entries, max_size=5), st.none() | st.from_regex(r"\A[A-Za-z0-9_-]{1,60}\Z"))
def test_the_page_renders_as_its_models_would(
    items: list[HistoryEntry], cursor: str | None
) -> None:
    ours = orjson.loads(history_page_json(items, cursor))
    theirs = as_models(items, cursor).model_dump(mode="json")
    assert ours == theirs
    assert [list(e) for e in ours["data"]] == [list(e) for e in theirs["data"]]
    HistoryPage.model_validate(ours)  # and it keeps the documented patterns


def test_an_empty_page_is_an_empty_list_and_no_cursor() -> None:
    assert history_page_json([], None) == b'{"data":[],"next_cursor":null}'


def test_times_leave_in_utc_with_a_z_and_amounts_are_signed() -> None:
    entry = HistoryEntry(
        seq=7,
        transaction_id="txn_1",
        type=EntryType.USAGE,
        occurred_at=datetime(2026, 11, 24, 13, 0, 0, 250, tzinfo=UTC),
        amount=-1_500_000_000,
        grant_id=None,
        kind=None,
        description="Usage",
        balance_after=420,
        reference=None,
    )
    [rendered] = orjson.loads(history_page_json([entry], None))["data"]
    assert rendered["occurred_at"] == "2026-11-24T13:00:00.000250Z"
    assert (rendered["amount"], rendered["balance_after"]) == ("-1.50", "0.00000042")
