"""Holds: the estimated cost of a request in flight, set aside from the team's credit.

A hold is placed by an authorization that carries an ``estimate`` and is allowed. Until
it ends, every later decision for the team sees its usable credit minus the team's open
holds, so a prepaid-only team can not start more work than its credit pays for.

A hold ends exactly once, by whichever comes first: the usage event with its
``request_id`` is charged (the actual cost goes to the ledger), the platform releases
it, or its time runs out. Holds are never money: nothing of them is in the ledger.

Every open hold of the team counts against every decision of the team, whatever its
scope: a hold on scoped credit may make a decision on other credit stricter than it
needs to be, never looser (docs/decisions/0017).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from creditledger.domain.accounts import BillingMode
from creditledger.domain.errors import InvalidRequest
from creditledger.domain.money import Nanos, parse_amount
from creditledger.domain.values import Value

MAX_REQUEST_ID_LENGTH = 255
MAX_ESTIMATE_METERS = 16


class Hold(Value, frozen=True):
    id: str
    team_id: str
    amount: Nanos
    expires_at: datetime
    request_id: str | None = None

    def is_open_at(self, at: datetime) -> bool:
        return at < self.expires_at


class Placement(Value, frozen=True):
    """The hold book's answer to a hold, in one atomic step: the hold that stands for the
    request (the one placed, or the open one the team already had for its request id),
    None when it did not fit; and the team's open holds before the call."""

    hold: Hold | None
    held: Nanos


class Estimate(Value, frozen=True):
    """What a request is expected to cost: quantities priced like usage, or an amount."""

    quantities: dict[str, int] | None = None
    amount: Nanos | None = None


def read_estimate(raw: object) -> Estimate:
    """``{"quantities": {meter: int}}`` or ``{"amount": "0.05"}``; anything else is
    ``InvalidRequest`` (param ``estimate``)."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise InvalidRequest(
            '`estimate` is {"quantities": {meter: count}} or {"amount": "0.05"}.',
            param="estimate",
        )
    if "amount" in raw:
        return Estimate(amount=parse_amount(raw["amount"], param="estimate.amount", minimum=0))
    quantities = raw.get("quantities")
    if (
        not isinstance(quantities, dict)
        or not 1 <= len(quantities) <= MAX_ESTIMATE_METERS
        or not all(
            isinstance(k, str) and 1 <= len(k) <= 64 and type(v) is int and 0 <= v <= 10**15
            for k, v in quantities.items()
        )
    ):
        raise InvalidRequest(
            "`estimate.quantities` maps 1 to 16 meter names to whole numbers ≥ 0.",
            param="estimate.quantities",
        )
    return Estimate(quantities=dict(quantities))


def check_request_id(request_id: object) -> str | None:
    if request_id is None:
        return None
    if (
        not isinstance(request_id, str)
        or not 1 <= len(request_id) <= MAX_REQUEST_ID_LENGTH
        or not request_id.isascii()
        or not request_id.isprintable()
    ):
        raise InvalidRequest(
            "`request_id` is the id the usage event will carry: 1 to 255 printable ASCII "
            "characters.",
            param="request_id",
        )
    return request_id


def hold_cap(mode: BillingMode, usable: Nanos) -> Nanos | None:
    """The most the team's open holds may add up to: its usable credit when it is
    prepaid-only; no limit (None) on pay-as-you-go, whose holds only show."""
    return None if mode is BillingMode.PAY_AS_YOU_GO else usable


def fits(open_total: Nanos, amount: Nanos, cap: Nanos | None) -> bool:
    """May a request costing ``amount`` go on beside open holds of ``open_total`` under
    ``cap``? Only while some credit is left after the holds, and the amount fits in it:
    a prepaid-only team with nothing left is refused whatever the request is estimated
    at, with a hold or without."""
    return cap is None or (open_total < cap and open_total + amount <= cap)


def left_after_holds(usable: Nanos, open_total: Nanos) -> Nanos:
    """Credit a decision may still count on: usable credit minus the open holds."""
    return max(0, usable - open_total)


def hold_expiry(at: datetime, lifetime: timedelta) -> datetime:
    return at + lifetime
