"""The sandbox payment provider: offline, for local use, demos and tests.

It behaves like a small Stripe: checkout sessions with their own payment page
(``GET /sandbox/checkout/{id}``), test cards, cards saved for off-session
charges, idempotency keys on every call, and Stripe-shaped events delivered as
signed webhooks (``Sandbox-Signature``) through a :class:`WebhookOutbox`.

Test cards: ``4242 4242 4242 4242`` succeeds, ``4000 0000 0000 0002`` is
declined. A checkout session is paid or declined once: after that (or once it
expired) its page says it is settled and charges nothing; another try is another
purchase. A saved card's id carries its last four digits, so an off-session
charge from another process (``creditledger worker``) knows what it would do.
The sandbox's own records (sessions, payments) are kept by a
:class:`~creditledger.adapters.payments.sandbox_store.SandboxStore`: in the
service's database when run for real, so every process and every restart sees them.

The signing secret is given, or read lazily (a callable), so a process can be built
before the database that holds a generated secret is migrated.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from creditledger.adapters.payments import signatures
from creditledger.adapters.payments.base import (
    event_from_dict,
    metadata_for,
    outcome_from_intent,
)
from creditledger.adapters.payments.delivery import SIGNATURE_HEADER, WebhookOutbox
from creditledger.adapters.payments.sandbox_store import (
    Intent,
    MemorySandboxStore,
    SandboxSession,
    SandboxStore,
)
from creditledger.domain.errors import InvalidRequest, InvalidSignature, NotFound
from creditledger.domain.payments import (
    CheckoutPage,
    CheckoutRequest,
    CheckoutSession,
    CheckoutState,
    OffSessionCharge,
    PaymentEvent,
    PaymentOutcome,
    PaymentStatus,
    billing_return_path,
    check_webhook_secret,
    to_cents,
)

SUCCESS_CARD = "4242424242424242"
DECLINE_CARD = "4000000000000002"
DECLINE_MESSAGE = "Your card was declined."
EXPIRED_MESSAGE = "The checkout page expired before payment."
SECRET_NAME = "CREDITLEDGER_SANDBOX_WEBHOOK_SECRET"  # noqa: S105 - a setting's name


class SandboxProvider:
    name = "sandbox"

    def __init__(
        self,
        webhook_secret: str | Callable[[], str],
        public_url: str,
        outbox: WebhookOutbox,
        now: Callable[[], datetime],
        *,
        store: SandboxStore | None = None,
        tolerance: int = signatures.DEFAULT_TOLERANCE,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(webhook_secret, str):
            fixed = check_webhook_secret(webhook_secret, SECRET_NAME)
            self._secret: Callable[[], str] = lambda: fixed
        else:
            self._secret = webhook_secret
        self.public_url = public_url.rstrip("/")
        self.outbox = outbox
        self.now = now
        self.store: SandboxStore = store if store is not None else MemorySandboxStore()
        self.tolerance = tolerance
        self.wall_time = wall_time
        self._count_lock = threading.Lock()
        self.checkouts_created = 0
        """How many distinct checkout sessions this process made (replays excluded)."""
        self.charges_made = 0
        """How many off-session charges this process made (replays excluded)."""

    @property
    def webhook_secret(self) -> str:
        """What signs the sandbox's webhooks; never empty nor a published default."""
        return check_webhook_secret(self._secret(), SECRET_NAME)

    # -- the provider port -------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        to_cents(request.amount)
        session, new = self.store.add_session(
            SandboxSession(
                id=_new_id("cs_sb"),
                idempotency_key=request.idempotency_key,
                reference=request.reference,
                purpose=request.purpose,
                team_id=request.team_id,
                amount=request.amount,
                customer_ref=request.customer_ref or _new_id("cus_sb"),
                payment_id=_new_id("pi_sb"),
                state=CheckoutState.OPEN,
                created_at=self.now(),
            )
        )
        if new:
            with self._count_lock:
                self.checkouts_created += 1
        return CheckoutSession(session.id, f"{self.public_url}/sandbox/checkout/{session.id}")

    def charge_off_session(self, charge: OffSessionCharge) -> PaymentOutcome:
        succeeded = _card_of(charge.payment_method_ref) == SUCCESS_CARD[-4:]
        intent = _intent(
            _new_id("pi_sb"),
            to_cents(charge.amount),
            metadata_for(charge.purpose, charge.reference, charge.team_id),
            charge.customer_ref,
            charge.payment_method_ref,
            succeeded,
        )
        kept, new = self.store.add_charge(charge.idempotency_key, intent, self.now())
        if new:
            with self._count_lock:
                self.charges_made += 1
            self._announce(kept)
        return outcome_from_intent(kept)

    def checkout_outcome(self, session_id: str) -> PaymentOutcome | None:
        session = self.store.session(session_id)
        if session is None or session.state is CheckoutState.OPEN:
            return None
        if session.state is CheckoutState.EXPIRED:
            return PaymentOutcome(
                PaymentStatus.FAILED,
                None,
                session.purpose,
                session.reference,
                failure_reason=EXPIRED_MESSAGE,
            )
        intent = self.store.intent(session.payment_id)
        if intent is None:
            return None
        outcome = outcome_from_intent(intent)
        return outcome if outcome.status is not PaymentStatus.PENDING else None

    def expire_checkout(self, session_id: str) -> PaymentOutcome | None:
        if self.store.settle(session_id, CheckoutState.EXPIRED, None, self.now()):
            return None
        return self.checkout_outcome(session_id)

    def recent_payments(self, since: datetime) -> list[PaymentOutcome]:
        outcomes = [outcome_from_intent(intent) for intent in self.store.intents_since(since)]
        return [o for o in outcomes if o.status is PaymentStatus.SUCCEEDED]

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        header = headers.get(SIGNATURE_HEADER.lower())
        signatures.verify(body, header, self.webhook_secret, self.wall_time(), self.tolerance)
        try:
            # The standard parser keeps integers of any size exact (an absurd amount
            # is refused as what it is, not read as a float).
            event = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise InvalidSignature("The webhook body is not JSON.") from exc
        if not isinstance(event, dict):
            raise InvalidSignature("The webhook body is not an event.")
        return event_from_dict(event)

    # -- the sandbox's own payment page --------------------------------------------------

    def checkout_page(self, session_id: str) -> CheckoutPage | None:
        session = self.store.session(session_id)
        if session is None:
            return None
        return CheckoutPage(
            session.id,
            session.amount,
            session.state,
            billing_return_path(session.team_id, session.purpose, session.reference),
        )

    def pay(self, session_id: str, card_number: str) -> PaymentOutcome:
        """Try a test card on an open session. A settled one (paid, declined, expired)
        charges nothing and answers what it settled as."""
        session = self.store.session(session_id)
        if session is None:
            raise NotFound("No sandbox checkout session with this id.")
        if session.state is CheckoutState.OPEN:
            card = "".join(card_number.split())
            if card not in (SUCCESS_CARD, DECLINE_CARD):
                raise InvalidRequest(
                    "Use a sandbox test card: 4242 4242 4242 4242 succeeds, "
                    "4000 0000 0000 0002 is declined.",
                    param="card_number",
                )
            succeeded = card == SUCCESS_CARD
            intent = _intent(
                session.payment_id,
                to_cents(session.amount),
                metadata_for(session.purpose, session.reference, session.team_id),
                session.customer_ref,
                f"pm_sb_{card[-4:]}_{secrets.token_hex(6)}",
                succeeded,
            )
            state = CheckoutState.PAID if succeeded else CheckoutState.DECLINED
            if self.store.settle(session.id, state, intent, self.now()):
                self._announce(intent)
                return outcome_from_intent(intent)
        settled = self.checkout_outcome(session_id)
        assert settled is not None, "a settled session has an outcome"
        return settled

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
        self.outbox.put(json.dumps(event, separators=(",", ":")).encode())
        return event_id

    def intent(self, payment_id: str) -> Intent:
        found = self.store.intent(payment_id)
        if found is None:
            raise KeyError(payment_id)
        return found

    def _announce(self, intent: Intent) -> None:
        """Tell the service about a payment, as the provider would: by webhook."""
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
) -> Intent:
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
