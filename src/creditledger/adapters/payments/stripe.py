"""The Stripe payment provider, on Stripe's official SDK.

- Purchases: a Checkout Session in ``payment`` mode whose PaymentIntent saves the
  card for later (``setup_future_usage=off_session``); a team's first checkout
  creates its Stripe Customer, later ones reuse it.
- Auto-recharge: an off-session PaymentIntent confirmed at once on the saved card.
- Every call carries an idempotency key derived from our own id, so a retry never
  charges twice. Three kinds of failure are told apart (:func:`_call`):
  a refused card (``card_error``) is a failed payment with Stripe's reason; a
  connection failure, a rate limit or a Stripe server error is
  ``PaymentProviderUnavailable`` (nothing decided, retry later); a request Stripe
  refuses as invalid (``invalid_request_error``, a key it does not accept) is our own
  fault: logged with Stripe's message and request id, and raised as
  ``PaymentRequestRejected``, never taken for a decline.
- Webhooks: ``stripe.Webhook.construct_event`` checks the signature over the raw
  body (constant-time) and the age; a timestamp from the future is refused here too.
  A failed attempt on a Checkout page is not the end of a purchase (the customer may
  try another card there), so ``payment_intent.payment_failed`` of a purchase is
  acknowledged and not acted on; the purchase fails when its checkout expires.

The HTTP client can be injected (``stripe.HTTPClient``), so tests run offline against
recorded responses, and the API's address can be changed
(``CREDITLEDGER_STRIPE_API_BASE``), so they also run against a local Stripe emulator.
"""

from __future__ import annotations

import logging
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
    metadata_for,
    outcome_from_intent,
    outcome_from_session,
)
from creditledger.domain.errors import (
    InvalidSignature,
    PaymentProviderUnavailable,
    PaymentRequestRejected,
)
from creditledger.domain.payments import (
    CheckoutRequest,
    CheckoutSession,
    OffSessionCharge,
    PaymentEvent,
    PaymentOutcome,
    PaymentPurpose,
    PaymentStatus,
    to_cents,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

SIGNATURE_HEADER = "stripe-signature"
MAX_LISTED = 1000


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        public_url: str,
        *,
        api_base: str | None = None,
        http_client: stripe.HTTPClient | None = None,
        max_network_retries: int = 2,
        tolerance: int = signatures.DEFAULT_TOLERANCE,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        """``api_base`` replaces Stripe's API address (an emulator's, in tests)."""
        self.client = stripe.StripeClient(
            api_key,
            http_client=http_client,
            max_network_retries=max_network_retries,
            base_addresses={"api": api_base.rstrip("/")} if api_base else {},
        )
        self.webhook_secret = webhook_secret
        self.public_url = public_url.rstrip("/")
        self.tolerance = tolerance
        self.wall_time = wall_time

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        metadata = metadata_for(request.purpose, request.reference, request.team_id)
        back = f"{self.public_url}{request.return_path}"
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": to_cents(request.amount),
                        "product_data": {"name": request.description},
                    },
                    "quantity": 1,
                }
            ],
            "client_reference_id": request.reference,
            "metadata": metadata,
            "payment_intent_data": {"setup_future_usage": "off_session", "metadata": metadata},
            "success_url": back,
            "cancel_url": back,
        }
        if request.customer_ref:
            params["customer"] = request.customer_ref
        else:
            params["customer_creation"] = "always"
        session = _call(
            "the checkout",
            lambda: self.client.v1.checkout.sessions.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": request.idempotency_key},
            ),
        )
        return CheckoutSession(session.id, str(session.url))

    def charge_off_session(self, charge: OffSessionCharge) -> PaymentOutcome:
        params: dict[str, Any] = {
            "amount": to_cents(charge.amount),
            "currency": "usd",
            "customer": charge.customer_ref,
            "payment_method": charge.payment_method_ref,
            # The saved card, and only a card: with automatic payment methods (the
            # default of current API versions) Stripe may otherwise ask for a
            # return_url, which an off-session charge has nowhere to send.
            "payment_method_types": ["card"],
            "off_session": True,
            "confirm": True,
            "metadata": metadata_for(charge.purpose, charge.reference, charge.team_id),
        }
        try:
            intent = _call(
                "the off-session charge",
                lambda: self.client.v1.payment_intents.create(
                    params,  # type: ignore[arg-type]
                    {"idempotency_key": charge.idempotency_key},
                ),
            )
        except stripe.CardError as exc:
            return _card_failure(exc)
        outcome = outcome_from_intent(intent.to_dict())
        if outcome.status is PaymentStatus.PENDING and intent.status == "requires_action":
            # Off-session, nobody is there to authenticate: as good as declined.
            return _failed(outcome, "The card needs the customer to authenticate the payment.")
        return outcome

    def checkout_outcome(self, session_id: str) -> PaymentOutcome | None:
        session = _call(
            "the status poll",
            lambda: self.client.v1.checkout.sessions.retrieve(
                session_id, {"expand": ["payment_intent"]}
            ),
        )
        return outcome_from_session(session.to_dict())

    def expire_checkout(self, session_id: str) -> PaymentOutcome | None:
        """``POST /v1/checkout/sessions/{id}/expire``; Stripe refuses it for a session
        that is no longer open (paid, or expired already), which is then read."""
        try:
            _call(
                "closing the checkout",
                lambda: self.client.v1.checkout.sessions.expire(session_id),
                quiet=(stripe.InvalidRequestError,),
            )
        except stripe.InvalidRequestError:
            return self.checkout_outcome(session_id)
        return None

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

        intents = _call("the reconciliation listing", listed)
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
        read = event_from_dict(event.to_dict())
        outcome = read.outcome
        if (
            read.type == "payment_intent.payment_failed"
            and outcome is not None
            and outcome.purpose in (PaymentPurpose.PURCHASE, PaymentPurpose.INVOICE)
        ):
            # One card refused on the Checkout page, which stays open for another. (An
            # invoice's off-session charge reports its decline in the charge's answer.)
            return PaymentEvent(read.event_id, read.type, None)
        return read


REJECTED = (
    "The payment provider refused a request of ours. This is a problem on our side, "
    "not with the card; it has been logged. Please try again later."
)


def _call(
    what: str,
    request: Callable[[], T],
    *,
    quiet: tuple[type[Exception], ...] = (),
) -> T:
    """Run one SDK call and sort what Stripe raises.

    A card error is left to the caller (a decline); a connection failure, a rate limit
    or a server error is an outage (``PaymentProviderUnavailable``); anything else (an
    invalid request, a key Stripe does not accept) is our fault: logged, and raised as
    ``PaymentRequestRejected``. The ``quiet`` errors are the caller's to handle.
    """
    try:
        return request()
    except stripe.CardError:
        raise
    except quiet:
        raise
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        raise PaymentProviderUnavailable(
            f"The payment provider could not complete {what} just now; try again later."
        ) from exc
    except stripe.StripeError as exc:
        error = exc.error
        log.error(
            "Stripe refused %s: %s (status %s, type %s, code %s, param %s, request %s)",
            what,
            exc.user_message or str(exc),
            exc.http_status,
            getattr(error, "type", None),
            exc.code,
            getattr(error, "param", None),
            exc.request_id,
        )
        raise PaymentRequestRejected(REJECTED) from exc


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
