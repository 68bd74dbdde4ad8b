"""The double-entry ledger: balanced transactions of integer postings."""

from __future__ import annotations

import pytest

from creditledger.domain import ledger
from creditledger.domain.errors import UnbalancedTransaction
from creditledger.domain.ledger import EntryType, Posting, Transaction
from creditledger.domain.money import dollars
from tests.builders import grant
from tests.helpers import at

NOW = at("2026-11-24T12:00")


def tx(*amounts: object) -> Transaction:
    return Transaction(
        team_id="team_test",
        type=EntryType.ADJUSTMENT,
        occurred_at=NOW,
        postings=tuple(Posting(f"acct:{i}", a) for i, a in enumerate(amounts)),  # type: ignore[arg-type]
        description="test",
    )


def test_a_balanced_transaction_is_accepted() -> None:
    assert len(tx(5, -3, -2).postings) == 3


@pytest.mark.parametrize("amounts", [(5, -4), (1,), (0, 1), (-1, -1, 1)])
def test_postings_that_do_not_sum_to_zero_are_refused(amounts: tuple[int, ...]) -> None:
    with pytest.raises(UnbalancedTransaction):
        tx(*amounts)


def test_a_transaction_without_postings_is_refused() -> None:
    with pytest.raises(UnbalancedTransaction):
        tx()


@pytest.mark.parametrize("bad", [1.0, 0.5, True, "1", None])
def test_a_posting_amount_that_is_not_an_int_is_refused(bad: object) -> None:
    with pytest.raises(UnbalancedTransaction, match="int"):
        tx(bad, -1)


def test_issuing_a_promotional_grant_funds_it_from_promotional_expense() -> None:
    promo = grant("promo", "3.00")
    issued = ledger.issue_grant(promo, "Sign-up credit")
    assert {(p.account, p.amount) for p in issued.postings} == {
        (f"grant:{promo.id}", dollars("3.00")),
        (ledger.PROMOTIONAL_EXPENSE, -dollars("3.00")),
    }
    assert issued.type is EntryType.GRANT


def test_issuing_a_prepaid_grant_funds_it_from_payments_clearing() -> None:
    prepaid = grant("prepaid", "10.00")
    issued = ledger.issue_grant(prepaid, "Purchase")
    assert (ledger.PAYMENTS_CLEARING, -dollars("10.00")) in {
        (p.account, p.amount) for p in issued.postings
    }


@pytest.mark.parametrize(
    ("entry_type", "target"),
    [(EntryType.EXPIRY, ledger.EXPIRED_CREDIT), (EntryType.VOID, ledger.VOIDED_CREDIT)],
)
def test_a_write_off_moves_what_is_left_to_its_own_platform_account(
    entry_type: EntryType, target: str
) -> None:
    promo = grant("promo", "3.00", remaining="1.25")
    off = ledger.write_off(promo, promo.remaining, entry_type, NOW, "gone")
    assert {(p.account, p.amount) for p in off.postings} == {
        (f"grant:{promo.id}", -dollars("1.25")),
        (target, dollars("1.25")),
    }
    assert off.reference == promo.id


def test_usage_posts_one_line_per_grant_and_the_uncovered_rest_to_unpaid() -> None:
    a, b = grant("promo", "1.00"), grant("prepaid", "1.00")
    charge = ledger.charge_usage("team_test", ((a.id, 100), (b.id, 50)), 25, NOW, "usage", "evt_1")
    assert [(p.account, p.amount) for p in charge.postings] == [
        (f"grant:{a.id}", -100),
        (f"grant:{b.id}", -50),
        ("team_unpaid:team_test", -25),
        (ledger.USAGE_REVENUE, 175),
    ]


def test_fully_covered_usage_posts_nothing_to_unpaid() -> None:
    a = grant("promo", "1.00")
    charge = ledger.charge_usage("team_test", ((a.id, 100),), 0, NOW, "usage", None)
    assert all(not p.account.startswith("team_unpaid:") for p in charge.postings)
