"""The price book and team pricing, as exact fractions (SPEC §5).

A price is ``unit_price`` nano-dollars per ``per_units`` units of a meter, for a
(product, model or GPU, meter). An event's charge is Σ quantity × price over its
meters, times the team's discount, computed exactly with ``Fraction`` and rounded
once, half to even, to the nano-dollar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction

from creditledger.domain.errors import InvalidRequest
from creditledger.domain.grants import PRODUCTS

METER_RE = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
MAX_PER_UNITS = 10**12
MAX_EVENT_CHARGE = 10**6 * 10**9
"""$1,000,000 in nanos: far above any real event, and 5,000 of them still fit the
64-bit ledger columns, where quantity × price alone could overflow them."""
BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class Price:
    product: str
    model: str | None
    gpu: str | None
    meter: str
    unit_price: int
    """Nano-dollars per ``per_units`` units."""
    per_units: int

    @property
    def per_unit(self) -> Fraction:
        return Fraction(self.unit_price, self.per_units)

    @property
    def key(self) -> tuple[str, str | None, str | None, str]:
        return (self.product, self.model, self.gpu, self.meter)


def check_price(price: Price, index: int) -> None:
    param = f"prices[{index}]"
    if price.product not in PRODUCTS:
        raise InvalidRequest(f"`{param}.product` must be one of {sorted(PRODUCTS)}.", param=param)
    if price.model is None and price.gpu is None:
        raise InvalidRequest(f"`{param}` needs a `model` or a `gpu`.", param=param)
    if not METER_RE.match(price.meter):
        raise InvalidRequest(f"`{param}.meter` must be a snake_case name.", param=param)
    if not 1 <= price.per_units <= MAX_PER_UNITS:
        raise InvalidRequest(
            f"`{param}.per_units` must be a whole number from 1 to {MAX_PER_UNITS}.", param=param
        )


class PricingError(Exception):
    """An event that can not be priced; ``code`` is its rejection code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownPrice(PricingError):
    """Raised by lookups; ``code`` is ``unknown_model`` or ``unknown_meter``."""


class ChargeTooLarge(PricingError):
    """One event would cost more than :data:`MAX_EVENT_CHARGE` (``invalid_quantity``)."""


@dataclass(frozen=True)
class PriceBook:
    """One version of the price book, effective from ``effective_from``."""

    effective_from: datetime
    prices: tuple[Price, ...]
    _by_key: dict[tuple[str, str | None, str | None, str], Price] = field(
        init=False, repr=False, compare=False
    )
    _subjects: frozenset[tuple[str, str | None, str | None]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", {p.key: p for p in self.prices})
        subjects = {(p.product, p.model, None) for p in self.prices if p.model} | {
            (p.product, None, p.gpu) for p in self.prices if p.gpu
        }
        object.__setattr__(self, "_subjects", frozenset(subjects))

    def price_for(self, product: str, model: str, gpu: str | None, meter: str) -> Price:
        """The most specific price: (model and gpu), then model, then gpu."""
        for key in (
            (product, model, gpu, meter),
            (product, model, None, meter),
            (product, None, gpu, meter),
        ):
            if key[2] is None and key[1] is None:
                continue
            found = self._by_key.get(key)
            if found is not None:
                return found
        if (product, model, None) in self._subjects or (
            gpu is not None and (product, None, gpu) in self._subjects
        ):
            raise UnknownPrice("unknown_meter", f"No price for meter `{meter}` of this model.")
        raise UnknownPrice(
            "unknown_model",
            f"No price for model `{model}` on `{product}`"
            + (f" with GPU `{gpu}`." if gpu else "."),
        )


@dataclass(frozen=True)
class TeamPricing:
    """A team's custom prices and/or discount, effective from a date (bulk discounts)."""

    effective_from: datetime
    discount_bp: int = 0
    """Discount in basis points (1% = 100)."""
    prices: tuple[Price, ...] = ()

    def custom(self) -> PriceBook:
        return PriceBook(self.effective_from, self.prices)


def effective(versions: Sequence[PriceBook], at: datetime) -> PriceBook | None:
    """The book in force at ``at``: the latest whose ``effective_from`` ≤ at.

    Usage from before the first book (reported late, up to 35 days) is priced by the
    book in force when prices began: there is no other price for it, and refusing it
    would lose it.
    """
    best: PriceBook | None = None
    for book in versions:
        if book.effective_from <= at and (
            best is None or book.effective_from >= best.effective_from
        ):
            best = book
    if best is None and versions:
        return effective(versions, min(book.effective_from for book in versions))
    return best


def effective_team(versions: Sequence[TeamPricing], at: datetime) -> TeamPricing | None:
    best: TeamPricing | None = None
    for tp in versions:
        if tp.effective_from <= at and (best is None or tp.effective_from >= best.effective_from):
            best = tp
    return best


def divide_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half to even, in integers."""
    quotient, rest = divmod(numerator, denominator)
    twice = 2 * rest
    if twice > denominator or (twice == denominator and quotient % 2):
        quotient += 1
    return quotient


def charge_for(
    quantities: Mapping[str, int],
    product: str,
    model: str,
    gpu: str | None,
    book: PriceBook | None,
    team: TeamPricing | None,
) -> int:
    """The exact charge of one event, in nanos, rounded once (half to even).

    Σ quantity × unit_price / per_units is kept as one fraction with a common
    denominator, so nothing is rounded before the end.
    """
    numerator, denominator = 0, 1
    custom = team.custom() if team is not None and team.prices else None
    for meter, quantity in quantities.items():
        price: Price | None = None
        if custom is not None:
            try:
                price = custom.price_for(product, model, gpu, meter)
            except UnknownPrice:
                price = None
        if price is None:
            if book is None:
                raise UnknownPrice("unknown_model", "The price book is empty.")
            price = book.price_for(product, model, gpu, meter)
        if price.per_units == denominator:
            numerator += quantity * price.unit_price
        else:
            numerator = numerator * price.per_units + quantity * price.unit_price * denominator
            denominator *= price.per_units
    if team is not None and team.discount_bp:
        numerator *= BASIS_POINTS - team.discount_bp
        denominator *= BASIS_POINTS
    charge = divide_half_even(numerator, denominator)
    if charge > MAX_EVENT_CHARGE:
        raise ChargeTooLarge(
            "invalid_quantity",
            "This event would cost more than $1,000,000; check its quantities.",
        )
    return charge
