"""Purchases of prepaid credit (SPEC §8).

A purchase is ``pending`` until the provider reports the payment. A decline
makes it ``failed`` but, as on Stripe's checkout page, the customer may still
pay with another card, which moves it on to ``succeeded``. After that only a
dispute or a refund can change it. See :func:`domain.payments.forward`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.payments import PaymentStatus, forward

PurchaseStatus = PaymentStatus


@dataclass(frozen=True, slots=True)
class Purchase:
    id: str
    team_id: str
    amount: int
    status: PaymentStatus
    checkout_session_id: str | None
    checkout_url: str | None
    provider_payment_id: str | None
    failure_reason: str | None
    created_at: datetime

    def after(self, seen: PaymentStatus) -> PaymentStatus:
        return forward(self.status, seen)
