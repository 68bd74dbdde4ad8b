"""Credit grants: one block of credit given to a team."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from creditledger.domain.errors import InvalidScope
from creditledger.domain.money import Nanos
from creditledger.domain.values import Value


class GrantKind(enum.StrEnum):
    PROMOTIONAL = "promotional"
    PREPAID = "prepaid"


class GrantSource(enum.StrEnum):
    SIGNUP = "signup"
    PROMO_CODE = "promo_code"
    PURCHASE = "purchase"
    AUTO_RECHARGE = "auto_recharge"
    MANUAL = "manual"
    REFUND = "refund"


class GrantStatus(enum.StrEnum):
    ACTIVE = "active"
    DEPLETED = "depleted"
    EXPIRED = "expired"
    VOIDED = "voided"
    SCHEDULED = "scheduled"


PRODUCTS = frozenset({"serverless", "dedicated", "container"})
_SCOPE_VALUE_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}\Z")
_SCOPE_DIMENSIONS = ("products", "models", "gpus")
MAX_SCOPE_VALUES = 100


class UsageScope(Value, frozen=True):
    """Where a piece of usage happened: what a grant's scope is matched against."""

    product: str
    model: str | None = None
    gpu: str | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """A limited scope. ``None`` in a dimension means "any"; a set means "only these".

    Usage is in scope when every listed dimension contains the usage's value.
    An unlimited grant has no Scope at all (``Grant.scope is None``).
    """

    products: frozenset[str] | None = None
    models: frozenset[str] | None = None
    gpus: frozenset[str] | None = None

    def contains(self, usage: UsageScope) -> bool:
        return (
            (self.products is None or usage.product in self.products)
            and (self.models is None or usage.model in self.models)
            and (self.gpus is None or usage.gpu in self.gpus)
        )

    def to_dict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in _SCOPE_DIMENSIONS:
            values: frozenset[str] | None = getattr(self, name)
            if values is not None:
                out[name] = sorted(values)
        return out

    @classmethod
    def parse(cls, raw: object) -> Scope | None:
        """Read an API scope object; ``None`` or ``{}`` mean unlimited."""
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise InvalidScope("`scope` must be an object or null.", param="scope")
        unknown = set(raw) - set(_SCOPE_DIMENSIONS)
        if unknown:
            raise InvalidScope(
                f"`scope` may only list products, models and gpus, not {sorted(unknown)}.",
                param="scope",
            )
        dims = {name: _parse_dimension(name, raw.get(name)) for name in _SCOPE_DIMENSIONS}
        if all(v is None for v in dims.values()):
            return None
        return cls(**dims)


def _parse_dimension(name: str, raw: object) -> frozenset[str] | None:
    if raw is None:
        return None
    param = f"scope.{name}"
    if not isinstance(raw, list) or not raw:
        raise InvalidScope(f"`{param}` must be a non-empty list of strings.", param=param)
    if len(raw) > MAX_SCOPE_VALUES:
        raise InvalidScope(f"`{param}` lists more than {MAX_SCOPE_VALUES} values.", param=param)
    values: set[str] = set()
    for item in raw:
        if not isinstance(item, str) or not _SCOPE_VALUE_RE.match(item):
            raise InvalidScope(
                f'`{param}` values must be identifiers such as "llama-3-70b".', param=param
            )
        if name == "products" and item not in PRODUCTS:
            raise InvalidScope(
                f"`{param}` must be among {sorted(PRODUCTS)}, not {item!r}.", param=param
            )
        values.add(item)
    return frozenset(values)


def default_effective_at(granted_at: datetime) -> datetime:
    """When a grant made at ``granted_at`` without a chosen start becomes usable: the
    start of that second.

    The platform reports usage to the second (as payment providers report times), so
    credit granted at 12:00:00.700 must pay for a request stamped 12:00:00: starting
    it at the exact microsecond would leave that request unpaid beside unused credit.
    Every grant source (sign-up, promo codes, operator grants, purchases,
    auto-recharge, refunds) takes its default start from here.
    """
    return granted_at.replace(microsecond=0)


EXPIRY_WARNING_DAYS = 7
"""A grant this close to its expiry is flagged: "expires in N days"."""


class Grant(Value, frozen=True):
    """One grant as stored. ``remaining`` is the cached balance of its ledger account.

    ``expires_at`` is exclusive; ``None`` never expires. ``voided_at`` is set when an
    operator voids it (its remaining is then written off by a ledger entry).
    """

    id: str
    team_id: str
    kind: GrantKind
    source: GrantSource
    amount: Nanos
    remaining: Nanos
    scope: Scope | None
    effective_at: datetime
    expires_at: datetime | None
    voided_at: datetime | None
    created_at: datetime

    def is_usable_at(self, at: datetime) -> bool:
        """Not voided, in its validity window; says nothing about remaining."""
        return (
            self.voided_at is None
            and self.effective_at <= at
            and (self.expires_at is None or at < self.expires_at)
        )

    def expires_soon_in_days(self, now: datetime) -> int | None:
        """Whole days (rounded up) until a usable grant expires, when that is less than
        :data:`EXPIRY_WARNING_DAYS` away: what the Billing page warns about."""
        if self.expires_at is None or not self.is_usable_at(now) or self.remaining == 0:
            return None
        left = self.expires_at - now
        if left >= timedelta(days=EXPIRY_WARNING_DAYS):
            return None
        return -(-left // timedelta(days=1))

    def status_at(self, now: datetime) -> GrantStatus:
        if self.voided_at is not None:
            return GrantStatus.VOIDED
        if self.expires_at is not None and now >= self.expires_at:
            return GrantStatus.EXPIRED
        if now < self.effective_at:
            return GrantStatus.SCHEDULED
        if self.remaining == 0:
            return GrantStatus.DEPLETED
        return GrantStatus.ACTIVE
