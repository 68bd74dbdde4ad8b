"""Money as integer nano-dollars.

Every amount inside creditledger is an ``int`` of nano-dollars (1 USD = 10**9 n$).
The API's decimal strings are read and written here, digit by digit. Floats are
refused outright.
"""

from __future__ import annotations

import re
from typing import TypeAlias

from creditledger.domain.errors import InvalidAmount

Nanos: TypeAlias = int
"""An amount of money in integer nano-dollars (1 USD = 10**9). A plain ``int`` at
runtime; the name says the unit in every signature that carries money."""

NANOS_PER_DOLLAR = 1_000_000_000
NANOS_PER_CENT = 10_000_000
MAX_DECIMALS = 9

MAX_WHOLE_DIGITS = 15
AMOUNT_PATTERN = r"^[0-9]{1,15}(\.[0-9]{1,9})?$"
"""The only accepted spelling: 1-15 ASCII digits, optionally a dot and 1-9 digits. No
sign, no spaces, no separators, no exponent. :func:`parse_amount` reads exactly this
(without a regular expression; a test holds the two together), and the API's document
shows it."""

# A generous absolute ceiling so no field ever holds an absurd amount:
# one billion dollars in nanos still fits easily in a signed 64-bit column.
ABSOLUTE_MAX_NANOS: Nanos = 1_000_000_000 * NANOS_PER_DOLLAR


def dollars(text: str) -> Nanos:
    """Nanos of a trusted literal such as ``"3.00"``; for code and tests, not for input."""
    return parse_amount(text, minimum=0)


def parse_amount(
    value: object,
    *,
    param: str = "amount",
    minimum: Nanos = 1,
    maximum: Nanos = ABSOLUTE_MAX_NANOS,
    whole_cents: bool = False,
) -> Nanos:
    """Parse an API amount (a decimal string in dollars) into nano-dollars.

    ``minimum`` and ``maximum`` are inclusive bounds in nanos. Anything but a
    ``str`` of the form ``digits[.digits]`` with at most nine decimals is refused
    with :class:`InvalidAmount`, including JSON numbers, booleans and floats.
    """
    if not isinstance(value, str):
        raise InvalidAmount(
            f'`{param}` must be a decimal string in dollars such as "10.00", '
            f"not {json_kind(value)}.",
            param=param,
        )
    whole, dot, frac = value.partition(".")
    if not (
        0 < len(whole) <= MAX_WHOLE_DIGITS
        and whole.isascii()
        and whole.isdigit()
        and (not dot or (0 < len(frac) <= MAX_DECIMALS and frac.isascii() and frac.isdigit()))
    ):
        raise InvalidAmount(
            f'`{param}` must look like "10.00": digits, an optional dot and at most '
            "9 decimals; no sign, spaces, separators or exponent.",
            param=param,
        )
    nanos = int(whole) * NANOS_PER_DOLLAR + (int(frac.ljust(MAX_DECIMALS, "0")) if dot else 0)
    if whole_cents and nanos % NANOS_PER_CENT:
        raise InvalidAmount(f"`{param}` must be a whole number of cents.", param=param)
    if nanos < minimum or nanos > maximum:
        raise InvalidAmount(
            f"`{param}` must be between {format_amount(minimum)} and "
            f"{format_amount(maximum)} dollars.",
            param=param,
        )
    return nanos


def json_kind(value: object) -> str:
    """What a value was sent as, in the words of JSON, for messages: ``"a JSON number"``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a JSON number"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    return "this value"


def format_amount(nanos: Nanos) -> str:
    """Render nanos as a dollar string with at least two decimals: ``"10.00"``,
    ``"0.0000074"``, ``"-1.50"``."""
    if type(nanos) is not int:  # a bool, a float, a Decimal, a subclass of int
        raise TypeError("money is an int of nano-dollars")
    if nanos < 0:
        return "-" + format_amount(-nanos)
    digits = str(nanos)
    if len(digits) <= MAX_DECIMALS:
        digits = digits.rjust(MAX_DECIMALS + 1, "0")
    frac = digits[-MAX_DECIMALS:].rstrip("0")
    if len(frac) < 2:
        frac = frac.ljust(2, "0")
    return digits[:-MAX_DECIMALS] + "." + frac


def typed_amount(text: str) -> str:
    """An amount as a person types it into a form (``" $1,250.00 "``) in the one spelling
    :func:`parse_amount` reads (``"1250.00"``): surrounding spaces, one leading dollar
    sign and thousands separators are dropped; anything else is left for it to refuse."""
    cleaned = text.strip()
    cleaned = cleaned.removeprefix("$").strip()
    if re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?", cleaned):
        cleaned = cleaned.replace(",", "")
    return cleaned


def display_amount(nanos: Nanos) -> str:
    """Money for people to read, exact as :func:`format_amount` and with a dollar sign
    and thousands separators: ``"$1,234.50"``, ``"$0.0000074"``, ``"-$1.50"``."""
    whole, frac = format_amount(abs(nanos)).split(".")
    sign = "-" if nanos < 0 else ""
    return f"{sign}${int(whole):,}.{frac}"


def round_half_even_to_cents(nanos: Nanos) -> Nanos:
    """Round nanos to a whole number of cents (still expressed in nanos), half to even:
    the one rounding of money, applied once per invoice line."""
    cents, rest = divmod(nanos, NANOS_PER_CENT)
    twice = 2 * rest
    if twice > NANOS_PER_CENT or (twice == NANOS_PER_CENT and cents % 2 == 1):
        cents += 1
    return cents * NANOS_PER_CENT
