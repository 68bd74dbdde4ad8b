"""Usable credit and the late-arrival window: one definition of each.

*Usable credit* is what a team can spend at a time: grants not voided, with
``remaining > 0``, ``effective_at ≤ t < expires_at``, whose scope contains the usage.
The balance, the authorization answer and the auto-recharge threshold all read it
from :func:`usable_credit`; allocation (``domain/consumption.py``) draws only on
grants for which :func:`is_usable` holds.

*The late-arrival window* is how long after a grant's expiry it still pays for
usage stamped before that expiry. Usage arrives late, so a grant stays open to
usage until its window has passed (:func:`open_to_late_usage`); only then is its
rest written off (:func:`expiry_due`). Usage stamped inside the window is charged
as if it had arrived in time order (:func:`within_late_arrival_window`).

The SQL that selects the same grants lives in ``adapters/db/repositories.py``
(``usable_at``, ``expiry_due_by``); ``tests/integration/test_availability_sql.py``
checks that each agrees with its function here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from creditledger.domain.grants import Grant, UsageScope
from creditledger.domain.money import Nanos


def is_usable(
    grant: Grant, usage: UsageScope | None, at: datetime, remaining: Nanos | None = None
) -> bool:
    """May ``grant`` pay for usage of scope ``usage`` at ``at``?

    ``usage`` None asks about usage of any scope (a scoped grant counts): the balance
    shows all the credit a team can spend somewhere. ``remaining`` overrides the
    grant's own figure when a caller charging a batch keeps live ones.
    """
    left = grant.remaining if remaining is None else remaining
    return (
        left > 0
        and grant.is_usable_at(at)
        and (usage is None or grant.scope is None or grant.scope.contains(usage))
    )


def usable_credit(grants: Iterable[Grant], usage: UsageScope | None, at: datetime) -> Nanos:
    """Σ remaining of the grants that may pay for ``usage`` (None: any usage) at ``at``."""
    return sum(g.remaining for g in grants if is_usable(g, usage, at))


def usable_changes_after(grants: Iterable[Grant], at: datetime) -> datetime | None:
    """The first instant after ``at`` at which :func:`is_usable` can say otherwise for
    some grant with nothing written: one starts (``effective_at``) or expires
    (``expires_at``). Until then, usable credit computed at ``at`` holds; None: never."""
    first: datetime | None = None
    for grant in grants:
        for moment in (grant.effective_at, grant.expires_at):
            if moment is not None and moment > at and (first is None or moment < first):
                first = moment
    return first


def late_arrival_cutoff(now: datetime, window: timedelta) -> datetime:
    """How far back the late-arrival window reaches from ``now``.

    A grant that expired at or before the cutoff has closed: it pays for nothing
    more and its rest is due for write-off. Usage stamped at or after the cutoff is
    inside the window.
    """
    return now - window


def open_to_late_usage(grant: Grant, cutoff: datetime) -> bool:
    """Can ``grant`` still pay for usage arriving now (stamped before its expiry)?

    True when it never expires or expired after ``cutoff``; whether it pays for a
    given event is then :func:`is_usable` at the event's own time.
    """
    return grant.expires_at is None or grant.expires_at > cutoff


def expiry_due(grant: Grant, cutoff: datetime) -> bool:
    """Is the rest of ``grant`` to be written off as expired: unvoided, with credit
    left, and closed to late usage? (A voided grant's rest was written off by the void.)"""
    return grant.voided_at is None and grant.remaining > 0 and not open_to_late_usage(grant, cutoff)


def within_late_arrival_window(at: datetime, cutoff: datetime) -> bool:
    """Is usage stamped ``at`` inside the window, so that arriving late must not change
    what it and the usage after it pay?"""
    return at >= cutoff
