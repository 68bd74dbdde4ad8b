"""Re-allocation of usage after a late event (SPEC §5: arrival order inside the window
never changes what each grant pays)."""

from __future__ import annotations

import pytest

from creditledger.domain.consumption import order_can_matter
from creditledger.domain.grants import Scope
from creditledger.domain.ledger import EntryType, reallocate_usage, unpaid_account
from creditledger.domain.usage import decode_draws, encode_draws
from tests.builders import grant
from tests.helpers import at

START, END = at("2026-11-24T12:00"), at("2026-11-24T13:00")


def test_unlimited_grants_valid_throughout_make_the_order_irrelevant() -> None:
    grants = [grant("promo", "1.00", expires="2026-12-01"), grant("prepaid", "5.00")]
    assert not order_can_matter(grants, START, END)


def test_a_scoped_grant_makes_the_order_matter() -> None:
    llama = Scope(models=frozenset({"llama"}))
    assert order_can_matter([grant("promo", "1.00", scoped=llama)], START, END)


@pytest.mark.parametrize(
    ("effective", "expires", "matters"),
    [
        ("2026-11-24T12:30", None, True),
        (None, "2026-11-24T12:30", True),
        (None, "2026-11-24T13:00", True),
        (None, "2026-11-24T12:00", False),
        ("2026-11-24T13:30", None, False),
    ],
)
def test_a_grant_starting_or_ending_in_between_makes_the_order_matter(
    effective: str | None, expires: str | None, matters: bool
) -> None:
    made = grant("promo", "1.00", effective=effective or "2026-11-01", expires=expires)
    assert order_can_matter([made], START, END) is matters


def test_a_voided_grant_is_ineligible_for_all_usage_alike() -> None:
    voided = grant("promo", "1.00", effective="2026-11-24T12:30", voided="2026-11-24T12:40")
    assert not order_can_matter([voided], START, END)


def test_a_reallocation_moves_cost_between_grants_and_unpaid_and_balances() -> None:
    tx = reallocate_usage("team_a", (("g1", 100),), 50, (("g2", 150),), 0, START, "evt")
    assert tx is not None and tx.type is EntryType.ADJUSTMENT
    moves = {p.account: p.amount for p in tx.postings}
    assert moves == {"grant:g1": 100, "grant:g2": -150, unpaid_account("team_a"): 50}
    assert sum(moves.values()) == 0


def test_a_reallocation_that_changes_nothing_writes_nothing() -> None:
    assert reallocate_usage("t", (("g1", 10),), 5, (("g1", 10),), 5, START, "e") is None


def test_draws_survive_their_storage_form() -> None:
    draws = (("grant_0a", 7_400), ("grant_0b", 1))
    assert decode_draws(encode_draws(draws)) == draws
    assert decode_draws(None) == () and decode_draws("") == ()
