"""Time ranges given by callers: ``since`` (inclusive) to ``until`` (exclusive)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from creditledger.domain.errors import InvalidRequest


def check_period(since: datetime | None, until: datetime | None) -> None:
    """Refuse a range that ends before it starts, or where nothing could fall
    (``since == until``): the caller has swapped or mistyped a bound. Either bound may
    be left out."""
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("`since` must be before `until`.", param="since")


def day_range(
    since_day: str | None, until_day: str | None
) -> tuple[datetime | None, datetime | None]:
    """The instants of a range of whole UTC days as people pick them (``2026-11-30``):
    from the start of ``since_day`` to the end of ``until_day``, both included. A date
    that is not one (or is past the calendar's end) is ``InvalidRequest``."""
    since = _day_start(since_day, "since", 0)
    until = _day_start(until_day, "until", 1)
    check_period(since, until)
    return since, until


def _day_start(text: str | None, param: str, days_after: int) -> datetime | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
        return datetime.combine(day, time.min, UTC) + timedelta(days=days_after)
    except (ValueError, OverflowError):
        raise InvalidRequest(f"`{param}` must be a date such as 2026-11-30.", param=param) from None
