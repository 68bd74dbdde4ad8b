"""The price book and team pricing, as exact fractions.

A price is ``unit_price`` nano-dollars per ``per_units`` units of a meter, for a
(product, model or GPU, meter). An event's charge is Σ quantity × price over its
meters, times the team's discount, computed exactly with ``Fraction`` and rounded
once, half to even, to the nano-dollar.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction

from creditledger.domain.errors import (
    ChargeTooLarge,
    InvalidRequest,
    PricesInUse,
    UnknownPrice,
)
from creditledger.domain.grants import PRODUCTS
from creditledger.domain.money import Nanos

METER_RE = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
MAX_PER_UNITS = 10**12
MAX_EVENT_CHARGE: Nanos = 10**6 * 10**9
"""$1,000,000 in nanos: far above any real event, and 5,000 of them still fit the
64-bit ledger columns, where quantity × price alone could overflow them."""
BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class Price:
    product: str
    model: str | None
    gpu: str | None
    meter: str
    unit_price: Nanos
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
    _products: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", {p.key: p for p in self.prices})
        object.__setattr__(
            self, "_subjects", frozenset((p.product, p.model, p.gpu) for p in self.prices)
        )
        object.__setattr__(self, "_products", frozenset(p.product for p in self.prices))

    def find(self, product: str, model: str | None, gpu: str | None, meter: str) -> Price | None:
        """The most specific price: (model and gpu), then model, then gpu; None if none."""
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
        return None

    def knows(self, product: str, model: str | None, gpu: str | None) -> bool:
        """Some price of this book applies to usage of (product, model, gpu), for some
        meter: one for the model, for the GPU, or for that model on that GPU."""
        subjects = self._subjects
        return (product, model, None) in subjects or (
            gpu is not None
            and ((product, None, gpu) in subjects or (product, model, gpu) in subjects)
        )

    def prices_product(self, product: str) -> bool:
        return product in self._products

    def price_for(self, product: str, model: str, gpu: str | None, meter: str) -> Price:
        """:meth:`find`, raising :class:`UnknownPrice` (``unknown_meter`` for a known
        model or GPU, else ``unknown_model``) when there is no price."""
        found = self.find(product, model, gpu, meter)
        if found is not None:
            return found
        if self.knows(product, model, gpu):
            raise _unknown_meter(meter)
        raise _unknown_model(product, model, gpu)


def _unknown_meter(meter: str) -> UnknownPrice:
    return UnknownPrice("unknown_meter", f"No price for meter `{meter}` of this model.")


def _unknown_model(product: str, model: str | None, gpu: str | None) -> UnknownPrice:
    return UnknownPrice(
        "unknown_model",
        f"No price for model `{model}` on `{product}`" + (f" with GPU `{gpu}`." if gpu else "."),
    )


@dataclass(frozen=True)
class TeamPricing:
    """A team's custom prices and/or discount, effective from a date (bulk discounts)."""

    effective_from: datetime
    discount_bp: int = 0
    """Discount in basis points (1% = 100)."""
    prices: tuple[Price, ...] = ()

    _custom: PriceBook | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        custom = PriceBook(self.effective_from, self.prices) if self.prices else None
        object.__setattr__(self, "_custom", custom)

    def custom(self) -> PriceBook | None:
        """The custom prices as a book of their own; None when there are none."""
        return self._custom


def check_billable(
    product: str,
    model: str | None,
    gpu: str | None,
    book: PriceBook | None,
    team: TeamPricing | None = None,
) -> None:
    """Raise :class:`UnknownPrice` unless usage of (product, model, gpu) can be billed
    under ``book`` and the team's custom prices: ``unknown_product`` when nothing of the
    product has a price, ``unknown_model`` when the model (or GPU) has none.

    The one rule that usage pricing and authorization share, so that what usage
    would reject is never served. Meters are checked per event by :func:`charge_for`.
    """
    custom = team.custom() if team is not None else None
    if (book is not None and book.knows(product, model, gpu)) or (
        custom is not None and custom.knows(product, model, gpu)
    ):
        return
    if not any(b is not None and b.prices_product(product) for b in (book, custom)):
        raise UnknownPrice(
            "unknown_product",
            f"Nothing on `{product}` has a price yet, so its usage can not be billed.",
        )
    raise _unknown_model(product, model, gpu)


Subject = tuple[str, str | None, str | None]
"""What a price is for, or where usage happened: (product, model, gpu)."""

MAX_LISTED = 10


def applies_to(price: Price, subject: Subject) -> bool:
    """Would usage of ``subject`` be priced by ``price`` (for its meter)?"""
    product, model, gpu = subject
    return (
        price.product == product
        and (price.model is None or price.model == model)
        and (price.gpu is None or price.gpu == gpu)
    )


def dropped_prices(current: PriceBook | None, new: PriceBook) -> tuple[Price, ...]:
    """The prices of the current book whose (product, model, gpu, meter) ``new`` leaves out."""
    if current is None:
        return ()
    kept = {p.key for p in new.prices}
    return tuple(p for p in current.prices if p.key not in kept)


def dropped_in_use(
    dropped: Sequence[Price],
    new: PriceBook,
    used: Iterable[Subject],
    custom: Iterable[Subject],
) -> list[Price]:
    """Of the ``dropped`` prices, those still in use, which a new book may not leave out
    unless the operator says so:

    - recent usage of a (product, model, gpu) was priced by it and the new book has no
      price for that usage's meter (usage events do not keep their meters, so every
      meter of a used model or GPU counts as used);
    - or a team's custom prices (in force or scheduled) name its product, model and
      GPU: they were agreed on top of the book.
    """
    used, custom = list(used), set(custom)
    return [
        p
        for p in dropped
        if (p.product, p.model, p.gpu) in custom
        or any(applies_to(p, s) and new.find(*s, p.meter) is None for s in used)
    ]


def custom_subjects(
    versions_by_team: Iterable[Sequence[TeamPricing]], at: datetime
) -> set[Subject]:
    """What teams' custom prices name, in the version in force at ``at`` or a later one."""
    out: set[Subject] = set()
    for versions in versions_by_team:
        current = effective_team(versions, at)
        for version in versions:
            if version is current or version.effective_from > at:
                out.update((p.product, p.model, p.gpu) for p in version.prices)
    return out


def prices_in_use(prices: Sequence[Price]) -> PricesInUse:
    """The refusal of a new book that leaves out ``prices``, naming them."""
    names = [
        "/".join(part for part in (p.product, p.model, p.gpu, p.meter) if part)
        for p in prices[:MAX_LISTED]
    ]
    more = f" and {len(prices) - MAX_LISTED} more" if len(prices) > MAX_LISTED else ""
    return PricesInUse(
        f"The new price book leaves out prices still in use: {', '.join(names)}{more}. "
        "Keep them in the book, or send it with `allow_removals=true` to drop them.",
        param="prices",
    )


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


def prices_change_after(
    books: Sequence[PriceBook], team_pricing: Sequence[TeamPricing], at: datetime
) -> datetime | None:
    """The first instant after ``at`` at which :func:`effective` or :func:`effective_team`
    can choose another version (one takes effect); None: never, as far as is known."""
    later = [b.effective_from for b in books if b.effective_from > at]
    later += [p.effective_from for p in team_pricing if p.effective_from > at]
    return min(later, default=None)


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
) -> Nanos:
    """The exact charge of one event, in nanos, rounded once (half to even).

    Σ quantity × unit_price / per_units is kept as one fraction with a common
    denominator, so nothing is rounded before the end.
    """
    check_billable(product, model, gpu, book, team)
    numerator, denominator = 0, 1
    custom = team.custom() if team is not None else None
    for meter, quantity in quantities.items():
        price = custom.find(product, model, gpu, meter) if custom is not None else None
        if price is None and book is not None:
            price = book.find(product, model, gpu, meter)
        if price is None:
            raise _unknown_meter(meter)
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
