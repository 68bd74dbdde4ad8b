"""Promo code rules without a database: normal form, generated codes, terms, refusals."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import timedelta

import pytest

from creditledger.domain import errors
from creditledger.domain.grants import Scope
from creditledger.domain.money import dollars
from creditledger.domain.promo_codes import (
    CODE_SPACE,
    GENERATED_ALPHABET,
    GENERATED_BITS,
    MAX_INPUT_LENGTH,
    PromoCode,
    PromoTerms,
    Refusal,
    chosen_code,
    generated_code,
    normalise_code,
    refusal,
    refusal_error,
    too_many_attempts_message,
)
from tests.helpers import at

NOW = at("2026-11-24T12:00")


def promo(**changes: object) -> PromoCode:
    base = PromoCode(
        id="promo_1",
        code="WELCOME2026",
        display_code="WELCOME-2026",
        amount=dollars("5.00"),
        scope=None,
        valid_from=NOW - timedelta(days=1),
        redeem_by=None,
        credit_expires_at=None,
        credit_valid_days=None,
        max_redemptions=10,
        redemptions=0,
        disabled_at=None,
        created_at=NOW - timedelta(days=1),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# --- the normal form -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("WELCOME2026", "WELCOME2026"),
        ("welcome2026", "WELCOME2026"),
        ("Welcome-2026", "WELCOME2026"),
        ("  welcome 2026  ", "WELCOME2026"),
        ("w-e-l-c-o-m-e 2 0 2 6", "WELCOME2026"),
        ("7kqm-xh3d-9rtw-c2pf-n8vb", "7KQMXH3D9RTWC2PFN8VB"),
        ("OIL01", "OIL01"),  # operator-chosen codes may use any letter and digit
    ],
)
def test_codes_match_ignoring_case_spaces_and_dashes(typed: str, normal: str) -> None:
    assert normalise_code(typed) == normal


def test_sixty_four_characters_are_accepted_and_count_spaces_and_dashes() -> None:
    assert normalise_code("A" * MAX_INPUT_LENGTH) == "A" * 64
    assert normalise_code("AB-" * 21 + "C") == "AB" * 21 + "C"


@pytest.mark.parametrize(
    "typed",
    [
        "A" * 65,
        "AB-" * 21 + "CD",  # 65 characters, only 43 of them letters
        " " * 65,
        "x" * 10_000,
    ],
)
def test_more_than_sixty_four_characters_are_refused(typed: str) -> None:
    with pytest.raises(errors.InvalidRequest, match="at most 64") as caught:
        normalise_code(typed)
    assert caught.value.param == "code"


@pytest.mark.parametrize("typed", ["", " ", "---", " - - "])
def test_an_empty_code_is_refused(typed: str) -> None:
    with pytest.raises(errors.InvalidRequest, match="Enter the promo code"):
        normalise_code(typed)


@pytest.mark.parametrize(
    "typed",
    [
        "ＷＥＬＣＯＭＥ２０２６",  # full-width letters and digits
        "WELCOME２０２６",  # full-width digits only
        "WЕLCOME2026",  # Cyrillic capital IE
        "WELCОME2026",  # Cyrillic capital O
        "WELCOΜE2026",  # Greek capital MU
        "\u212aEY2026",  # KELVIN SIGN, which lower-cases to an ASCII k
        "stra\u00dfe",  # sharp s, which upper-cases to SS
        "WELCOME\u20132026",  # en dash
        "WELCOME\u00a02026",  # no-break space
        "WELCOME\u200b2026",  # zero-width space
        "WELCOME\t2026",
        "WELCOME2026\n",
        "WELCOME_2026",
        "WELCOME.2026",
        "WELCOME2026!",
        "١٢٣٤",  # Arabic-Indic digits
        "WELCOME2026\x00",
    ],
)
def test_anything_but_ascii_letters_digits_spaces_and_dashes_is_refused(typed: str) -> None:
    with pytest.raises(errors.InvalidRequest, match="only the letters A to Z") as caught:
        normalise_code(typed)
    assert caught.value.param == "code"


@pytest.mark.parametrize("value", [None, 2026, 20.26, True, ["WELCOME"], {"code": "X"}, b"ABC"])
def test_a_code_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(errors.InvalidRequest, match="must be a string"):
        normalise_code(value)


def test_a_chosen_code_keeps_its_display_text_in_upper_case() -> None:
    assert chosen_code(" welcome-2026 ") == ("WELCOME2026", "WELCOME-2026")


def test_a_chosen_code_has_at_least_four_letters_or_digits() -> None:
    assert chosen_code("AB-CD") == ("ABCD", "AB-CD")
    with pytest.raises(errors.InvalidRequest, match="at least 4"):
        chosen_code("A-B-C")


# --- generated codes -----------------------------------------------------------------------


def test_the_generated_alphabet_has_no_look_alikes() -> None:
    assert len(set(GENERATED_ALPHABET)) == len(GENERATED_ALPHABET) == 30
    assert not set(GENERATED_ALPHABET) & set("0O1IL U")
    assert set(GENERATED_ALPHABET) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def test_generated_codes_carry_at_least_80_bits() -> None:
    assert GENERATED_BITS >= 80
    assert math.log2(CODE_SPACE) == pytest.approx(GENERATED_BITS)


@pytest.mark.parametrize("value", [0, 1, 12_345_678_901_234_567, CODE_SPACE // 2, CODE_SPACE - 1])
def test_generated_codes_are_groups_of_four_that_match_themselves(value: int) -> None:
    text = generated_code(value)
    assert re.fullmatch(r"([2-9A-HJKMNP-TV-Z]{4}-){4}[2-9A-HJKMNP-TV-Z]{4}", text)
    assert normalise_code(text) == text.replace("-", "")
    assert normalise_code(text.lower().replace("-", " ")) == text.replace("-", "")


def test_different_numbers_give_different_codes() -> None:
    values = [0, 1, 2, 29, 30, 31, CODE_SPACE - 2, CODE_SPACE - 1, 2**80, 2**97]
    assert len({generated_code(v) for v in values}) == len(values)


@pytest.mark.parametrize("value", [-1, CODE_SPACE])
def test_numbers_outside_the_code_space_are_a_programming_error(value: int) -> None:
    with pytest.raises(ValueError, match="code space"):
        generated_code(value)


# --- terms ---------------------------------------------------------------------------------


def terms(**changes: object) -> PromoTerms:
    return replace(PromoTerms(amount=dollars("5.00"), max_redemptions=10), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"max_redemptions": 0}, "max_redemptions"),
        ({"max_redemptions": -3}, "max_redemptions"),
        ({"max_redemptions": 1_000_000_001}, "max_redemptions"),
        (
            {"credit_expires_at": NOW + timedelta(days=30), "credit_valid_days": 30},
            "credit_valid_days",
        ),
        ({"credit_valid_days": 0}, "credit_valid_days"),
        ({"credit_valid_days": 3651}, "credit_valid_days"),
        ({"redeem_by": NOW}, "redeem_by"),
        ({"redeem_by": NOW - timedelta(days=1)}, "redeem_by"),
        (
            {"valid_from": NOW + timedelta(days=10), "redeem_by": NOW + timedelta(days=5)},
            "redeem_by",
        ),
        ({"credit_expires_at": NOW - timedelta(seconds=1)}, "credit_expires_at"),
    ],
)
def test_terms_that_could_never_work_are_refused(changes: dict[str, object], param: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        terms(**changes).check(NOW)
    assert caught.value.param == param


def test_sensible_terms_pass_and_make_a_fresh_code() -> None:
    scope = Scope(products=frozenset({"serverless"}))
    t = terms(scope=scope, redeem_by=NOW + timedelta(days=7), credit_valid_days=30)
    t.check(NOW)
    code = t.new_code("promo_x", "ABCD", "AB-CD", NOW)
    assert (code.valid_from, code.redemptions, code.disabled_at, code.scope) == (
        NOW,
        0,
        None,
        scope,
    )


def test_the_credit_expires_on_its_date_or_days_after_redemption_or_never() -> None:
    later = NOW + timedelta(days=3)
    assert promo().credit_expiry(later) is None
    assert promo(credit_valid_days=30).credit_expiry(later) == later + timedelta(days=30)
    fixed = NOW + timedelta(days=90)
    assert promo(credit_expires_at=fixed).credit_expiry(later) == fixed


# --- refusals and their precedence ---------------------------------------------------------

DISABLED = {"disabled_at": NOW - timedelta(hours=1)}
NOT_YET = {"valid_from": NOW + timedelta(hours=1), "created_at": NOW - timedelta(days=1)}
PAST_REDEEM_BY = {"redeem_by": NOW}
CREDIT_GONE = {"credit_expires_at": NOW - timedelta(seconds=1)}
FULL = {"redemptions": 10}


@pytest.mark.parametrize(
    ("changes", "already", "expected"),
    [
        ({}, False, None),
        ({"redemptions": 9}, False, None),
        ({"redeem_by": NOW + timedelta(microseconds=1)}, False, None),
        (DISABLED, False, Refusal.INVALID),
        (NOT_YET, False, Refusal.INVALID),
        (PAST_REDEEM_BY, False, Refusal.EXPIRED),
        (CREDIT_GONE, False, Refusal.EXPIRED),
        ({}, True, Refusal.ALREADY_REDEEMED),
        (FULL, False, Refusal.LIMIT_REACHED),
        # When several apply, the first in the order of refusals wins.
        (DISABLED | PAST_REDEEM_BY | FULL, True, Refusal.INVALID),
        (NOT_YET | FULL, True, Refusal.INVALID),
        (PAST_REDEEM_BY | FULL, True, Refusal.EXPIRED),
        (CREDIT_GONE | FULL, False, Refusal.EXPIRED),
        (FULL, True, Refusal.ALREADY_REDEEMED),
    ],
)
def test_refusals_follow_the_spec_precedence(
    changes: dict[str, object], already: bool, expected: Refusal | None
) -> None:
    assert refusal(promo(**changes), NOW, already_redeemed=already) is expected


def test_an_unknown_code_is_invalid_whatever_else_is_true() -> None:
    assert refusal(None, NOW, already_redeemed=True) is Refusal.INVALID


@pytest.mark.parametrize(
    ("reason", "cls", "code", "advice"),
    [
        (Refusal.INVALID, errors.PromoCodeInvalid, "promo_code_invalid", "Check"),
        (Refusal.EXPIRED, errors.PromoCodeExpired, "promo_code_expired", "Contact support"),
        (
            Refusal.ALREADY_REDEEMED,
            errors.PromoCodeAlreadyRedeemed,
            "promo_code_already_redeemed",
            "credit history",
        ),
        (
            Refusal.LIMIT_REACHED,
            errors.PromoCodeLimitReached,
            "promo_code_limit_reached",
            "another code",
        ),
    ],
)
def test_each_refusal_has_its_code_and_says_what_to_do(
    reason: Refusal, cls: type[errors.PromoCodeRefused], code: str, advice: str
) -> None:
    error = refusal_error(reason)
    assert type(error) is cls
    assert error.code == code
    assert advice in error.message
    assert error.param == "code"


def test_the_throttle_message_says_when_to_try_again() -> None:
    assert "try again in 60 minutes" in too_many_attempts_message(3600)
    assert "try again in 1 minute." in too_many_attempts_message(5)
    error = errors.TooManyAttempts("wait", retry_after=42)
    assert (error.code, error.retry_after) == ("too_many_attempts", 42)
