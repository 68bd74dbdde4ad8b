"""domain/usage.py: what makes one usage event valid, and the code it is rejected with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditledger.domain.errors import EventError
from creditledger.domain.usage import MAX_QUANTITY, UsageEvent, parse_event

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def raw(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "evt-1",
        "team_id": "team_1",
        "product": "serverless",
        "model": "meta-llama/Llama-3-70b",
        "timestamp": "2026-11-24T11:59:00Z",
        "quantities": {"input_tokens": 37, "output_tokens": 0},
    }
    for name, value in changes.items():
        if value is ...:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def code_of(event: object) -> str:
    with pytest.raises(EventError) as refused:
        parse_event(event, NOW)
    assert refused.value.message
    return refused.value.code


def test_a_valid_event_is_read_with_its_time_in_utc() -> None:
    event = parse_event(raw(timestamp="2026-11-24T12:59:00+01:00", gpu="h100"), NOW)

    assert event.timestamp == datetime(2026, 11, 24, 11, 59, tzinfo=UTC)
    assert (event.product, event.model, event.gpu) == (
        "serverless",
        "meta-llama/Llama-3-70b",
        "h100",
    )
    assert event.quantities == {"input_tokens": 37, "output_tokens": 0}


def test_gpu_may_be_left_out_or_null() -> None:
    assert parse_event(raw(gpu=...), NOW).gpu is None
    assert parse_event(raw(gpu=None), NOW).gpu is None


@pytest.mark.parametrize(
    ("quantities", "ok"),
    [
        ({"requests": 0}, True),
        ({"requests": MAX_QUANTITY}, True),
        ({"requests": MAX_QUANTITY + 1}, False),
        ({"requests": -1}, False),
        ({"requests": 1.0}, False),
        ({"requests": 0.5}, False),
        ({"requests": True}, False),
        ({"requests": False}, False),
        ({"requests": "1"}, False),
        ({"requests": None}, False),
        ({"requests": [1]}, False),
        ({}, False),
        ([["requests", 1]], False),
        ("requests=1", False),
        (None, False),
    ],
)
def test_quantities_are_whole_numbers_from_zero_to_the_maximum(
    quantities: object, ok: bool
) -> None:
    if ok:
        assert parse_event(raw(quantities=quantities), NOW).quantities == quantities
    else:
        assert code_of(raw(quantities=quantities)) == "invalid_quantity"


def test_a_missing_quantities_object_is_an_invalid_quantity() -> None:
    assert code_of(raw(quantities=...)) == "invalid_quantity"


@pytest.mark.parametrize("meter", ["Input", "1tokens", "input-tokens", "", "a" * 65, "tökens"])
def test_a_meter_that_is_not_a_snake_case_name_is_unknown(meter: str) -> None:
    assert code_of(raw(quantities={meter: 1})) == "unknown_meter"


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (-timedelta(days=35), True),
        (-timedelta(days=35, microseconds=1), False),
        (timedelta(minutes=5), True),
        (timedelta(minutes=5, microseconds=1), False),
        (timedelta(0), True),
    ],
    ids=["35 days old", "older", "5 minutes ahead", "further ahead", "now"],
)
def test_timestamps_from_35_days_ago_to_5_minutes_ahead_are_in_range(
    offset: timedelta, ok: bool
) -> None:
    event = raw(timestamp=(NOW + offset).isoformat())
    if ok:
        assert parse_event(event, NOW).timestamp == NOW + offset
    else:
        assert code_of(event) == "timestamp_out_of_range"


@pytest.mark.parametrize(
    "timestamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1970-01-01T00:00:00Z"]
)
def test_a_time_that_can_not_even_be_shown_in_utc_is_out_of_range(timestamp: str) -> None:
    assert code_of(raw(timestamp=timestamp)) == "timestamp_out_of_range"


@pytest.mark.parametrize(
    "timestamp",
    ["2026-11-24T11:00:00", "2026-11-24", "yesterday", "", 1_790_000_000, None, "x" * 41],
    ids=["no zone", "a date", "words", "empty", "a number", "null", "too long"],
)
def test_a_timestamp_must_be_rfc_3339_with_a_zone(timestamp: object) -> None:
    assert code_of(raw(timestamp=timestamp)) == "invalid_timestamp"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"cost": "1.00"}, "unknown_field"),
        ({"product": "training"}, "unknown_product"),
        ({"product": None}, "unknown_product"),
        ({"id": ...}, "invalid_event"),
        ({"id": ""}, "invalid_event"),
        ({"id": "has space"}, "invalid_event"),
        ({"id": 17}, "invalid_event"),
        ({"id": "x" * 256}, "invalid_event"),
        ({"team_id": ...}, "invalid_event"),
        ({"team_id": "-team"}, "invalid_event"),
        ({"model": ...}, "invalid_event"),
        ({"model": "llama 3"}, "invalid_event"),
        ({"gpu": ""}, "invalid_event"),
        ({"gpu": 100}, "invalid_event"),
    ],
)
def test_each_malformed_field_has_its_code(changes: dict[str, Any], code: str) -> None:
    assert code_of(raw(**changes)) == code


@pytest.mark.parametrize("event", [None, [], "evt", 3, True])
def test_an_event_that_is_not_an_object_is_invalid(event: object) -> None:
    assert code_of(event) == "invalid_event"


def _parse(**changes: Any) -> UsageEvent:
    return parse_event(raw(**changes), NOW)


def test_the_same_payload_has_the_same_fingerprint_however_it_is_written() -> None:
    base = _parse()
    assert _parse(timestamp="2026-11-24T06:59:00-05:00").fingerprint == base.fingerprint
    assert (
        _parse(quantities={"output_tokens": 0, "input_tokens": 37}).fingerprint == base.fingerprint
    )
    assert _parse(id="evt-2").fingerprint == base.fingerprint  # the id is the key, not the payload


@pytest.mark.parametrize(
    "changes",
    [
        {"quantities": {"input_tokens": 38, "output_tokens": 0}},
        {"quantities": {"input_tokens": 37}},
        {"timestamp": "2026-11-24T11:59:00.000001Z"},
        {"model": "mistral"},
        {"product": "dedicated"},
        {"gpu": "h100"},
    ],
)
def test_any_change_to_the_payload_changes_the_fingerprint(changes: dict[str, Any]) -> None:
    assert _parse(**changes).fingerprint != _parse().fingerprint


OFFSETS = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": JSON | st.text(max_size=300),
            "team_id": JSON,
            "product": st.sampled_from(["serverless", "dedicated", "container"]) | JSON,
            "model": JSON,
            "gpu": JSON,
            "timestamp": JSON | st.datetimes(timezones=OFFSETS).map(datetime.isoformat),
            "quantities": JSON
            | st.dictionaries(st.text(max_size=8), st.integers() | JSON, max_size=3),
        },
    )
    | JSON
)
def test_any_json_value_is_either_an_event_or_a_rejection_with_a_code(value: object) -> None:
    event: UsageEvent | None = None
    code: str | None = None
    try:
        event = parse_event(value, NOW)
    except EventError as refused:
        code = refused.code

    if event is None:
        assert code in {
            "invalid_event",
            "invalid_quantity",
            "invalid_timestamp",
            "timestamp_out_of_range",
            "unknown_field",
            "unknown_meter",
            "unknown_product",
        }
    else:
        assert all(0 <= q <= MAX_QUANTITY for q in event.quantities.values())
        assert NOW - timedelta(days=35) <= event.timestamp <= NOW + timedelta(minutes=5)
