"""The sandbox payment provider: offline, for local use, demos and tests.

It behaves like a small Stripe: checkout sessions with their own payment page
(``GET /sandbox/checkout/{id}``), test cards, cards saved for off-session
charges, idempotency keys on every call, and Stripe-shaped events delivered as
signed webhooks (``Sandbox-Signature``) through a :class:`WebhookOutbox`.

Test cards: ``4242 4242 4242 4242`` succeeds, ``4000 0000 0000 0002`` is
declined. A saved card's id carries its last four digits, so an off-session
charge from another process (``creditledger worker``) knows what it would do.
The sandbox's own records (sessions, payments) live in the memory of the process
that made them; creditledger's records of them are in the database as usual.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from creditledger.adapters.payments import signatures
from creditledger.adapters.payments.base import (
    event_from_dict,
    outcome_from_intent,
    purchase_metadata,
    recharge_metadata,
)
from creditledger.adapters.payments.delivery import SIGNATURE_HEADER, WebhookOutbox
from creditledger.domain.errors import InvalidRequest, InvalidSignature, NotFound
from creditledger.domain.payments import (
    CheckoutPage,
    CheckoutRequest,
    CheckoutSession,
    OffSessionCharge,
    PaymentEvent,
    PaymentOutcome,
    PaymentStatus,
    to_cents,
)

SUCCESS_CARD = "4242424242424242"
DECLINE_CARD = "4000000000000002"
DECLINE_MESSAGE = "Your card was declined."


@dataclass
class _Session:
    id: str
    request: CheckoutRequest
    customer_ref: str
    payment_id: str
    paid: bool = False
    declined: bool = False


@dataclass
class _Payment:
    intent: dict[str, Any]
    created: datetime


class SandboxProvider:
    name = "sandbox"

    def __init__(
        self,
        webhook_secret: str,
        public_url: str,
        outbox: WebhookOutbox,
        now: Callable[[], datetime],
        *,
        tolerance: int = signatures.DEFAULT_TOLERANCE,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        self.webhook_secret = webhook_secret
        self.public_url = public_url.rstrip("/")
        self.outbox = outbox
        self.now = now
        self.tolerance = tolerance
        self.wall_time = wall_time
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        self._sessions_by_key: dict[str, str] = {}
        self._payments: dict[str, _Payment] = {}
        self._charges_by_key: dict[str, str] = {}
        self.checkouts_created = 0
        """How many distinct checkout sessions were made (idempotent replays excluded)."""
        self.charges_made = 0
        """How many off-session charges were attempted (idempotent replays excluded)."""

    # -- the provider port -------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        to_cents(request.amount)
        with self._lock:
            session_id = self._sessions_by_key.get(request.idempotency_key)
            if session_id is None:
                session_id = _new_id("cs_sb")
                customer = request.customer_ref or _new_id("cus_sb")
                self._sessions[session_id] = _Session(
                    session_id, request, customer, _new_id("pi_sb")
                )
                self._sessions_by_key[request.idempotency_key] = session_id
                self.checkouts_created += 1
        return CheckoutSession(session_id, f"{self.public_url}/sandbox/checkout/{session_id}")

    def charge_off_session(self, charge: OffSessionCharge) -> PaymentOutcome:
        with self._lock:
            payment_id = self._charges_by_key.get(charge.idempotency_key)
            if payment_id is None:
                payment_id = _new_id("pi_sb")
                self._charges_by_key[charge.idempotency_key] = payment_id
                self.charges_made += 1
                succeeded = _card_of(charge.payment_method_ref) == SUCCESS_CARD[-4:]
                intent = _intent(
                    payment_id,
                    to_cents(charge.amount),
                    recharge_metadata(charge.recharge_id, charge.team_id),
                    charge.customer_ref,
                    charge.payment_method_ref,
                    succeeded,
                )
                self._record(intent)
            intent = self._payments[payment_id].intent
        return outcome_from_intent(intent)

    def checkout_outcome(self, session_id: str) -> PaymentOutcome | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            payment = self._payments.get(session.payment_id)
        if payment is None:
            return None
        outcome = outcome_from_intent(payment.intent)
        return outcome if outcome.status is not PaymentStatus.PENDING else None

    def recent_payments(self, since: datetime) -> list[PaymentOutcome]:
        with self._lock:
            found = [p.intent for p in self._payments.values() if p.created >= since]
        outcomes = [outcome_from_intent(intent) for intent in found]
        return [o for o in outcomes if o.status is PaymentStatus.SUCCEEDED]

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        header = headers.get(SIGNATURE_HEADER.lower())
        signatures.verify(body, header, self.webhook_secret, self.wall_time(), self.tolerance)
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidSignature("The webhook body is not JSON.") from exc
        if not isinstance(event, dict):
            raise InvalidSignature("The webhook body is not an event.")
        return event_from_dict(event)

    # -- the sandbox's own payment page --------------------------------------------------

    def checkout_page(self, session_id: str) -> CheckoutPage | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            return CheckoutPage(session.id, session.request.amount, session.paid, session.declined)

    def pay(self, session_id: str, card_number: str) -> PaymentOutcome:
        card = "".join(card_number.split())
        if card not in (SUCCESS_CARD, DECLINE_CARD):
            raise InvalidRequest(
                "Use a sandbox test card: 4242 4242 4242 4242 succeeds, "
                "4000 0000 0000 0002 is declined.",
                param="card_number",
            )
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise NotFound("No sandbox checkout session with this id.")
            if session.paid:
                return outcome_from_intent(self._payments[session.payment_id].intent)
            request = session.request
            succeeded = card == SUCCESS_CARD
            intent = _intent(
                session.payment_id,
                to_cents(request.amount),
                purchase_metadata(request.purchase_id, request.team_id),
                session.customer_ref,
                f"pm_sb_{card[-4:]}_{secrets.token_hex(6)}",
                succeeded,
            )
            session.paid, session.declined = succeeded, not succeeded
            self._record(intent)
        return outcome_from_intent(intent)

    # -- helpers for tests and demos ----------------------------------------------------

    def emit(self, event_type: str, obj: dict[str, Any]) -> str:
        """Send any Stripe-shaped event through the outbox; returns its id."""
        event_id = _new_id("evt_sb")
        event = {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": int(self.wall_time()),
            "data": {"object": obj},
        }
        self.outbox.put(orjson.dumps(event))
        return event_id

    def intent(self, payment_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._payments[payment_id].intent)

    def _record(self, intent: dict[str, Any]) -> None:
        """Keep the payment and announce it, as the provider would, by webhook."""
        known = self._payments.get(intent["id"])
        self._payments[intent["id"]] = _Payment(intent, known.created if known else self.now())
        succeeded = intent["status"] == "succeeded"
        self.emit(
            "payment_intent.succeeded" if succeeded else "payment_intent.payment_failed",
            intent,
        )


def _intent(
    payment_id: str,
    cents: int,
    metadata: dict[str, str],
    customer: str,
    payment_method: str,
    succeeded: bool,
) -> dict[str, Any]:
    """A PaymentIntent as Stripe would show it after a confirmation attempt."""
    error = None
    if not succeeded:
        error = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": DECLINE_MESSAGE,
        }
    return {
        "id": payment_id,
        "object": "payment_intent",
        "amount": cents,
        "amount_received": cents if succeeded else 0,
        "currency": "usd",
        "customer": customer,
        "payment_method": payment_method if succeeded else None,
        "metadata": metadata,
        "status": "succeeded" if succeeded else "requires_payment_method",
        "last_payment_error": error,
    }


def _card_of(payment_method_ref: str) -> str:
    parts = payment_method_ref.split("_")
    return parts[2] if len(parts) >= 3 and parts[:2] == ["pm", "sb"] else ""


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
