"""Promo codes: the code text, generated codes, and when a code may be redeemed.

A code is matched case-insensitively, ignoring spaces and dashes: its *normal form*
is the upper-case letters and digits alone. What an admin types is checked before any
lookup: at most 64 characters of ASCII letters, digits, spaces and dashes. Anything
else, full-width or Cyrillic look-alikes included, is refused as malformed, so no
Unicode case folding can ever make two different inputs match one code.

Generated codes draw 20 characters from a 30-character alphabet with no look-alikes
(no 0/O, 1/I/L, and no U), about 98 bits, shown in groups of four:
``7KQM-XH3D-9RTW-C2PF-N8VB``. The randomness is passed in; the domain reads none.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from creditledger.domain.errors import (
    InvalidRequest,
    PromoCodeAlreadyRedeemed,
    PromoCodeExpired,
    PromoCodeInvalid,
    PromoCodeLimitReached,
    PromoCodeRefused,
)
from creditledger.domain.grants import Scope
from creditledger.domain.money import Nanos
from creditledger.domain.throttle import Counted, minutes

MAX_INPUT_LENGTH = 64
MIN_CHOSEN_LENGTH = 4
_INPUT_RE = re.compile(r"\A[A-Za-z0-9 -]*\Z")

GENERATED_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
GENERATED_LENGTH = 20
GROUP_SIZE = 4
CODE_SPACE = len(GENERATED_ALPHABET) ** GENERATED_LENGTH
"""How many generated codes there are: draw a uniform integer below this."""
GENERATED_BITS = GENERATED_LENGTH * math.log2(len(GENERATED_ALPHABET))

MAX_BATCH = 10_000
MAX_REDEMPTIONS = 1_000_000_000
MAX_CREDIT_VALID_DAYS = 3650

# The throttle: a team may fail this many redemptions in any window of this many seconds
# . The user's and the client address's budgets over the same window are
# settings; with them, neither a new team nor a new account buys fresh guesses.
MAX_FAILED_ATTEMPTS = 10
ATTEMPT_WINDOW_SECONDS = 3600
THROTTLE_ACTION = "promo-redeem-failures"


def normalise_code(raw: object, *, param: str = "code") -> str:
    """The normal form of what was typed: letters and digits, upper case.

    Refuses, before any lookup, anything but a string of at most 64 ASCII letters,
    digits, spaces and dashes with at least one letter or digit.
    """
    if not isinstance(raw, str):
        raise InvalidRequest(f"`{param}` must be a string.", param=param)
    if len(raw) > MAX_INPUT_LENGTH:
        raise InvalidRequest(
            f"A promo code is at most {MAX_INPUT_LENGTH} characters; check what you pasted.",
            param=param,
        )
    if not _INPUT_RE.match(raw):
        raise InvalidRequest(
            "A promo code has only the letters A to Z, digits, spaces and dashes; "
            "retype it rather than pasting it from a formatted document.",
            param=param,
        )
    code = raw.replace(" ", "").replace("-", "").upper()
    if not code:
        raise InvalidRequest("Enter the promo code you were given.", param=param)
    return code


def chosen_code(raw: object) -> tuple[str, str]:
    """(normal form, display text) of a code an operator chose, such as ``WELCOME-2026``."""
    code = normalise_code(raw)
    if len(code) < MIN_CHOSEN_LENGTH:
        raise InvalidRequest(
            f"A promo code has at least {MIN_CHOSEN_LENGTH} letters or digits.", param="code"
        )
    assert isinstance(raw, str)
    return code, raw.strip(" -").upper()


def generated_code(value: int) -> str:
    """The display text of the generated code numbered ``value`` (0 ≤ value < CODE_SPACE)."""
    if not 0 <= value < CODE_SPACE:
        raise ValueError("value outside the code space")
    base = len(GENERATED_ALPHABET)
    chars = []
    for _ in range(GENERATED_LENGTH):
        value, digit = divmod(value, base)
        chars.append(GENERATED_ALPHABET[digit])
    text = "".join(chars)
    return "-".join(text[i : i + GROUP_SIZE] for i in range(0, GENERATED_LENGTH, GROUP_SIZE))


@dataclass(frozen=True, slots=True)
class PromoTerms:
    """What a code gives and when, as an operator sets it.

    ``redeem_by`` is exclusive, like a grant's ``expires_at``. The credit expires at
    ``credit_expires_at``, or ``credit_valid_days`` after redemption, or never.
    """

    amount: Nanos
    max_redemptions: int
    scope: Scope | None = None
    valid_from: datetime | None = None
    redeem_by: datetime | None = None
    credit_expires_at: datetime | None = None
    credit_valid_days: int | None = None

    def check(self, now: datetime) -> None:
        """Refuse terms under which the code could never be redeemed usefully."""
        if not 1 <= self.max_redemptions <= MAX_REDEMPTIONS:
            raise InvalidRequest(
                f"`max_redemptions` must be between 1 and {MAX_REDEMPTIONS}.",
                param="max_redemptions",
            )
        if self.credit_expires_at is not None and self.credit_valid_days is not None:
            raise InvalidRequest(
                "Give either `credit_expires_at` or `credit_valid_days`, not both.",
                param="credit_valid_days",
            )
        if self.credit_valid_days is not None and not (
            1 <= self.credit_valid_days <= MAX_CREDIT_VALID_DAYS
        ):
            raise InvalidRequest(
                f"`credit_valid_days` must be between 1 and {MAX_CREDIT_VALID_DAYS}.",
                param="credit_valid_days",
            )
        start = max(now, self.valid_from or now)
        for name, value in (
            ("redeem_by", self.redeem_by),
            ("credit_expires_at", self.credit_expires_at),
        ):
            if value is not None and value <= start:
                raise InvalidRequest(
                    f"`{name}` must be in the future and after `valid_from`.", param=name
                )

    def new_code(self, promo_id: str, code: str, display_code: str, now: datetime) -> PromoCode:
        """A fresh code on these terms, valid from ``valid_from`` or ``now``."""
        return PromoCode(
            id=promo_id,
            code=code,
            display_code=display_code,
            amount=self.amount,
            scope=self.scope,
            valid_from=self.valid_from or now,
            redeem_by=self.redeem_by,
            credit_expires_at=self.credit_expires_at,
            credit_valid_days=self.credit_valid_days,
            max_redemptions=self.max_redemptions,
            redemptions=0,
            disabled_at=None,
            created_at=now,
        )


@dataclass(frozen=True, slots=True)
class PromoCode:
    """A stored code. ``code`` is the normal form (unique); ``display_code`` what people read."""

    id: str
    code: str
    display_code: str
    amount: Nanos
    scope: Scope | None
    valid_from: datetime
    redeem_by: datetime | None
    credit_expires_at: datetime | None
    credit_valid_days: int | None
    max_redemptions: int
    redemptions: int
    disabled_at: datetime | None
    created_at: datetime

    def credit_expiry(self, redeemed_at: datetime) -> datetime | None:
        """When the credit granted by a redemption at ``redeemed_at`` expires."""
        if self.credit_valid_days is not None:
            return redeemed_at + timedelta(days=self.credit_valid_days)
        return self.credit_expires_at


class Refusal(enum.IntEnum):
    """Why a redemption is refused; when several apply, the smallest wins."""

    INVALID = 1
    EXPIRED = 2
    ALREADY_REDEEMED = 3
    LIMIT_REACHED = 4


def refusal(code: PromoCode | None, now: datetime, *, already_redeemed: bool) -> Refusal | None:
    """The first reason, in the order of refusals, that refuses redeeming ``code`` at ``now``.

    A code whose credit would already be expired counts as expired itself.
    """
    if code is None or code.disabled_at is not None or now < code.valid_from:
        return Refusal.INVALID
    if (code.redeem_by is not None and now >= code.redeem_by) or (
        code.credit_expires_at is not None and now >= code.credit_expires_at
    ):
        return Refusal.EXPIRED
    if already_redeemed:
        return Refusal.ALREADY_REDEEMED
    if code.redemptions >= code.max_redemptions:
        return Refusal.LIMIT_REACHED
    return None


_REFUSALS: dict[Refusal, tuple[type[PromoCodeRefused], str]] = {
    Refusal.INVALID: (
        PromoCodeInvalid,
        "This promo code is not valid. Check that you typed it exactly as you received "
        "it; if it still fails, ask whoever gave it to you.",
    ),
    Refusal.EXPIRED: (
        PromoCodeExpired,
        "This promo code has expired and can no longer be redeemed. Contact support if "
        "you were told it is still valid.",
    ),
    Refusal.ALREADY_REDEEMED: (
        PromoCodeAlreadyRedeemed,
        "Your team has already redeemed this promo code; its credit is in your credit "
        "history. Each team can redeem a code once.",
    ),
    Refusal.LIMIT_REACHED: (
        PromoCodeLimitReached,
        "Every redemption of this promo code has been claimed. Ask whoever gave it to you "
        "for another code, or contact support.",
    ),
}
"""Each refusal's error and the words an admin sees, with what to do about it."""


def refusal_error(reason: Refusal) -> PromoCodeRefused:
    """The error an admin sees for ``reason`` (every reason has its own row)."""
    cls, message = _REFUSALS[reason]
    return cls(message, param="code")


def too_many_attempts_message(
    retry_after: int, counted: Counted = Counted.TEAM, limit: int = MAX_FAILED_ATTEMPTS
) -> str:
    """Whose budget ran out, and when to try again."""
    who = {
        Counted.TEAM: "Your team has",
        Counted.USER: "You have",
    }.get(counted, "Your network has")
    return (
        f"{who} entered {limit} promo codes that did not work within an hour. Check the "
        f"code and try again in {minutes(retry_after)}."
    )
