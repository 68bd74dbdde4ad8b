"""Time ranges given by callers: ``since`` (inclusive) to ``until`` (exclusive)."""

from __future__ import annotations

from datetime import datetime

from creditledger.domain.errors import InvalidRequest


def check_period(since: datetime | None, until: datetime | None) -> None:
    """Refuse a range that ends before it starts, or where nothing could fall
    (``since == until``): the caller has swapped or mistyped a bound. Either bound may
    be left out."""
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("`since` must be before `until`.", param="since")
