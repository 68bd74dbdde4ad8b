"""The Stripe payment provider, on Stripe's official SDK.

- Purchases: a Checkout Session in ``payment`` mode whose PaymentIntent saves the
  card for later (``setup_future_usage=off_session``); a team's first checkout
  creates its Stripe Customer, later ones reuse it.
- Auto-recharge: an off-session PaymentIntent confirmed at once on the saved card.
- Every call carries an idempotency key derived from our own id, so a retry never
  charges twice. Network and server failures become ``PaymentProviderUnavailable``
  (retry later); a refused card is a failed payment.
- Webhooks: ``stripe.Webhook.construct_event`` checks the signature over the raw
  body (constant-time) and the age; a timestamp from the future is refused here too.

The HTTP client is injected (``stripe.HTTPClient``), so tests run offline against
recorded responses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import stripe

from creditledger.adapters.payments import signatures
from creditledger.adapters.payments.base import (
    PURCHASE_KEY,
    RECHARGE_KEY,
    event_from_dict,
    outcome_from_intent,
    outcome_from_session,
    purchase_metadata,
    recharge_metadata,
)
from creditledger.domain.errors import InvalidSignature, PaymentProviderUnavailable
from creditledger.domain.payments import (
    CheckoutRequest,
    CheckoutSession,
    OffSessionCharge,
    PaymentEvent,
    PaymentOutcome,
    PaymentStatus,
    to_cents,
)

T = TypeVar("T")

SIGNATURE_HEADER = "stripe-signature"
MAX_LISTED = 1000
PRODUCT_NAME = "Prepaid credits"


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        public_url: str,
        *,
        http_client: stripe.HTTPClient | None = None,
        max_network_retries: int = 2,
        tolerance: int = signatures.DEFAULT_TOLERANCE,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        self.client = stripe.StripeClient(
            api_key, http_client=http_client, max_network_retries=max_network_retries
        )
        self.webhook_secret = webhook_secret
        self.public_url = public_url.rstrip("/")
        self.tolerance = tolerance
        self.wall_time = wall_time

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        metadata = purchase_metadata(request.purchase_id, request.team_id)
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": to_cents(request.amount),
                        "product_data": {"name": PRODUCT_NAME},
                    },
                    "quantity": 1,
                }
            ],
            "client_reference_id": request.purchase_id,
            "metadata": metadata,
            "payment_intent_data": {"setup_future_usage": "off_session", "metadata": metadata},
            "success_url": f"{self.public_url}/billing?purchase={request.purchase_id}",
            "cancel_url": f"{self.public_url}/billing?purchase={request.purchase_id}",
        }
        if request.customer_ref:
            params["customer"] = request.customer_ref
        else:
            params["customer_creation"] = "always"
        try:
            session = _call(
                lambda: self.client.v1.checkout.sessions.create(
                    params,  # type: ignore[arg-type]
                    {"idempotency_key": request.idempotency_key},
                )
            )
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(f"Stripe refused the checkout: {exc}") from exc
        return CheckoutSession(session.id, str(session.url))

    def charge_off_session(self, charge: OffSessionCharge) -> PaymentOutcome:
        params: dict[str, Any] = {
            "amount": to_cents(charge.amount),
            "currency": "usd",
            "customer": charge.customer_ref,
            "payment_method": charge.payment_method_ref,
            "off_session": True,
            "confirm": True,
            "description": "Auto-recharge of prepaid credits",
            "metadata": recharge_metadata(charge.recharge_id, charge.team_id),
        }
        try:
            intent = _call(
                lambda: self.client.v1.payment_intents.create(
                    params,  # type: ignore[arg-type]
                    {"idempotency_key": charge.idempotency_key},
                )
            )
        except stripe.CardError as exc:
            return _card_failure(exc)
        except stripe.InvalidRequestError as exc:
            # The saved card can not be charged at all (detached, expired…).
            reason = exc.user_message or "The saved payment method can not be charged."
            return PaymentOutcome(PaymentStatus.FAILED, None, failure_reason=reason)
        outcome = outcome_from_intent(intent.to_dict())
        if outcome.status is PaymentStatus.PENDING and intent.status == "requires_action":
            # Off-session, nobody is there to authenticate: as good as declined.
            return _failed(outcome, "The card needs the customer to authenticate the payment.")
        return outcome

    def checkout_outcome(self, session_id: str) -> PaymentOutcome | None:
        try:
            session = _call(
                lambda: self.client.v1.checkout.sessions.retrieve(
                    session_id, {"expand": ["payment_intent"]}
                )
            )
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(f"Stripe refused the lookup: {exc}") from exc
        return outcome_from_session(session.to_dict())

    def recent_payments(self, since: datetime) -> list[PaymentOutcome]:
        def listed() -> list[dict[str, Any]]:
            page = self.client.v1.payment_intents.list(
                {"created": {"gte": int(since.timestamp())}, "limit": 100}
            )
            intents = []
            for n, intent in enumerate(page.auto_paging_iter()):
                if n >= MAX_LISTED:
                    break
                intents.append(intent.to_dict())
            return intents

        try:
            intents = _call(listed)
        except stripe.StripeError as exc:
            raise PaymentProviderUnavailable(f"Stripe refused the listing: {exc}") from exc
        return [
            outcome_from_intent(intent)
            for intent in intents
            if intent.get("status") == "succeeded"
            and (
                PURCHASE_KEY in (intent.get("metadata") or {})
                or RECHARGE_KEY in (intent.get("metadata") or {})
            )
        ]

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        header = headers.get(SIGNATURE_HEADER)
        timestamp, _ = signatures.parse_header(header)
        signatures.check_timestamp(timestamp, self.wall_time(), self.tolerance)
        try:
            event = stripe.Webhook.construct_event(
                body, header, self.webhook_secret, tolerance=self.tolerance
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature("The Stripe signature does not match this body.") from exc
        except ValueError as exc:
            raise InvalidSignature("The webhook body is not a Stripe event.") from exc
        return event_from_dict(event.to_dict())


def _call(request: Callable[[], T]) -> T:
    """Run one SDK call; anything Stripe raises but a card error becomes an outage."""
    try:
        return request()
    except (stripe.CardError, stripe.InvalidRequestError):
        raise
    except stripe.StripeError as exc:
        raise PaymentProviderUnavailable(
            f"The payment provider did not complete the request: {exc.user_message or exc}"
        ) from exc


def _card_failure(exc: stripe.CardError) -> PaymentOutcome:
    reason = exc.user_message or "The card was declined."
    intent = getattr(exc.error, "payment_intent", None) if exc.error else None
    if intent is not None:
        return _failed(outcome_from_intent(intent.to_dict()), reason)
    return PaymentOutcome(
        status=PaymentStatus.FAILED, provider_payment_id=None, failure_reason=reason
    )


def _failed(outcome: PaymentOutcome, reason: str) -> PaymentOutcome:
    return PaymentOutcome(
        status=PaymentStatus.FAILED,
        provider_payment_id=outcome.provider_payment_id,
        purpose=outcome.purpose,
        reference=outcome.reference,
        customer_ref=outcome.customer_ref,
        failure_reason=outcome.failure_reason or reason,
    )
