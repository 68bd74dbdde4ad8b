"""A purchase's amount is checked before anything is stored or any provider is asked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from creditledger.domain.accounts import Role
from creditledger.domain.errors import InvalidAmount
from creditledger.domain.purchases import Purchase
from creditledger.services.idempotency import IdempotentRequest
from creditledger.services.purchases import start_purchase
from tests.services.fakes import world

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def never_rendered(purchase: Purchase) -> tuple[int, str]:
    raise AssertionError(f"a refused purchase was rendered: {purchase}")


@pytest.mark.parametrize(
    "amount",
    ["9.99", "10000.01", "10.005", "0", 10, "10.00 "],
    ids=["below-minimum", "above-maximum", "fraction-of-a-cent", "zero", "json-number", "space"],
)
def test_a_purchase_outside_the_bounds_or_finer_than_a_cent_is_refused(amount: object) -> None:
    w = world(NOW, purchase_min="10.00", purchase_max="10000.00")
    admin = w.user("ada@example.com")
    team = w.team((admin, Role.ADMIN))
    request = IdempotentRequest(
        caller=admin.caller_id, key="key-1", method="POST", path=f"/v1/teams/{team}/purchases"
    )

    with pytest.raises(InvalidAmount):
        start_purchase(w.ctx, admin, team, amount, request, never_rendered)

    assert w.uow.opened == 0
    assert w.sandbox.checkouts_created == 0
