"""One tree of domain errors, each with a stable code.

::

    CreditLedgerError
    ├── InvalidInput                      422 unless a subclass says otherwise
    │   ├── InvalidJson                   invalid_json (400: the body is not readable JSON)
    │   ├── InvalidAmount                 invalid_amount
    │   ├── InvalidRequest                invalid_request (wrong type, bad format, duplicate key)
    │   ├── InvalidScope                  invalid_scope
    │   ├── EmptyPriceBook                empty_price_book (a price book without any price)
    │   ├── InvalidCursor                 invalid_cursor (400)
    │   ├── UnknownField                  unknown_field
    │   ├── BadIdempotencyKey             invalid_idempotency_key (400)
    │   │   └── MissingIdempotencyKey     idempotency_key_required (400)
    │   ├── InvalidSignature              invalid_signature (400: a webhook we can not trust)
    │   └── EventError                    one usage event refused; its code is per event
    │       └── PricingError              an event that can not be priced
    │           ├── UnknownPrice          unknown_model / unknown_meter
    │           └── ChargeTooLarge        invalid_quantity
    ├── AuthError
    │   ├── Unauthenticated               unauthenticated (401)
    │   ├── InvalidCredentials            invalid_credentials (401)
    │   └── Forbidden                     forbidden (403)
    │       └── FormExpired               form_expired (a web form without its CSRF token)
    ├── NotFound                          not_found (404, identical for "other team's")
    ├── Conflict                          409
    │   ├── EmailTaken                    email_taken
    │   ├── AlreadyMember                 already_member
    │   ├── LastAdmin                     last_admin
    │   ├── GrantAlreadyVoided            grant_already_voided
    │   ├── RequestInProgress             request_in_progress
    │   ├── PaymentMethodRequired         payment_method_required
    │   ├── PromoCodeTaken                promo_code_taken (an operator chose a code in use)
    │   ├── PricesInUse                   prices_in_use (a new price book drops prices in use)
    │   ├── InvoiceTransitionRefused      invoice_status_conflict (e.g. voiding a paid invoice)
    │   └── WebhookDisabled               webhook_disabled (a test of a webhook turned off)
    ├── IdempotencyKeyReused              idempotency_key_reused (422)
    ├── PromoCodeRefused                  a redemption refused, in precedence order:
    │   ├── PromoCodeInvalid              promo_code_invalid (422)
    │   ├── PromoCodeExpired              promo_code_expired (422)
    │   ├── PromoCodeAlreadyRedeemed      promo_code_already_redeemed (409)
    │   └── PromoCodeLimitReached         promo_code_limit_reached (409)
    ├── TooManyAttempts                   too_many_attempts (429, Retry-After)
    ├── ServiceUnavailable                service_unavailable (503, retryable)
    │   ├── PaymentProviderUnavailable    payment_provider_unavailable
    │   └── PaymentNotYetKnown            payment_not_yet_known (a webhook that came early)
    ├── PaymentRequestRejected            payment_request_rejected (503, no Retry-After): the
    │                                     provider refused a request of ours; logged
    └── InternalError                     internal_error (500): a bug, never the caller's input
        └── UnbalancedTransaction         postings that do not sum to zero

An error whose ``retry_after`` is set (seconds) tells the client when to try again;
the HTTP layer sends it as a ``Retry-After`` header.

Entry points map each class to an HTTP status in one table; services and the
domain never speak HTTP.
"""

from __future__ import annotations


class CreditLedgerError(Exception):
    """Base class: every error carries a stable snake_case ``code``."""

    code = "error"
    retry_after: int | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInput(CreditLedgerError):
    code = "invalid_request"


class InvalidJson(InvalidInput):
    """The body is not readable JSON: not UTF-8, truncated, binary, NaN, nested too deep."""

    code = "invalid_json"


class InvalidAmount(InvalidInput):
    code = "invalid_amount"


class InvalidRequest(InvalidInput):
    code = "invalid_request"


class InvalidScope(InvalidInput):
    code = "invalid_scope"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"


class EmptyPriceBook(InvalidInput):
    """A price book without any price: every later usage event would be refused."""

    code = "empty_price_book"


class UnknownField(InvalidInput):
    code = "unknown_field"


class BadIdempotencyKey(InvalidInput):
    code = "invalid_idempotency_key"


class MissingIdempotencyKey(BadIdempotencyKey):
    code = "idempotency_key_required"


class AuthError(CreditLedgerError):
    code = "unauthenticated"


class Unauthenticated(AuthError):
    code = "unauthenticated"


class InvalidCredentials(AuthError):
    code = "invalid_credentials"


class Forbidden(AuthError):
    code = "forbidden"


class FormExpired(Forbidden):
    """A web form posted without the token of the page that showed it: a forged
    cross-site request, or a page older than the session."""

    code = "form_expired"


class NotFound(CreditLedgerError):
    code = "not_found"


class Conflict(CreditLedgerError):
    code = "conflict"


class WebhookDisabled(Conflict):
    """A test notice asked of a webhook that every try failing has turned off."""

    code = "webhook_disabled"


class EmailTaken(Conflict):
    code = "email_taken"


class AlreadyMember(Conflict):
    code = "already_member"


class LastAdmin(Conflict):
    code = "last_admin"


class GrantAlreadyVoided(Conflict):
    code = "grant_already_voided"


class RequestInProgress(Conflict):
    code = "request_in_progress"


class IdempotencyKeyReused(CreditLedgerError):
    code = "idempotency_key_reused"


class ServiceUnavailable(CreditLedgerError):
    code = "service_unavailable"
    retry_after = 1


class InvalidSignature(InvalidInput):
    """A webhook whose signature is missing, wrong, stale or from the future."""

    code = "invalid_signature"


class PaymentMethodRequired(Conflict):
    code = "payment_method_required"


class PaymentProviderUnavailable(ServiceUnavailable):
    """The payment provider did not answer, or answered with its own failure."""

    code = "payment_provider_unavailable"


class PaymentRequestRejected(CreditLedgerError):
    """The payment provider refused a request we made (invalid parameters, a key it does
    not accept): a fault on our side, logged for the operators. Nothing was charged and
    no card was declined; trying again at once will not help, so no ``retry_after``."""

    code = "payment_request_rejected"


class PaymentNotYetKnown(ServiceUnavailable):
    """A refund or dispute for a payment not seen yet: the provider will deliver it again."""

    code = "payment_not_yet_known"


class PromoCodeTaken(Conflict):
    code = "promo_code_taken"


class PricesInUse(Conflict):
    """A new price book leaves out prices still in use, without ``allow_removals``."""

    code = "prices_in_use"


class InvoiceTransitionRefused(Conflict):
    """An invoice asked to move to a status its own does not lead to."""

    code = "invoice_status_conflict"


class PromoCodeRefused(CreditLedgerError):
    """A redemption the rules refuse; each counts as a failed attempt of the team."""

    code = "promo_code_refused"


class PromoCodeInvalid(PromoCodeRefused):
    code = "promo_code_invalid"


class PromoCodeExpired(PromoCodeRefused):
    code = "promo_code_expired"


class PromoCodeAlreadyRedeemed(PromoCodeRefused):
    code = "promo_code_already_redeemed"


class PromoCodeLimitReached(PromoCodeRefused):
    code = "promo_code_limit_reached"


class TooManyAttempts(CreditLedgerError):
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EventError(InvalidInput):
    """One usage event refused; ``code`` is its rejection code (``unknown_model`` …).

    Usage batches report these per event instead of failing the request.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PricingError(EventError):
    """An event that can not be priced; ``code`` is its rejection code."""


class UnknownPrice(PricingError):
    """Raised by lookups; ``code`` is ``unknown_model`` or ``unknown_meter``."""


class ChargeTooLarge(PricingError):
    """One event would cost more than ``pricing.MAX_EVENT_CHARGE`` (``invalid_quantity``)."""


class InternalError(CreditLedgerError):
    """A programming error: the request was fine, the code was not."""

    code = "internal_error"


class UnbalancedTransaction(InternalError):
    """Postings must sum to zero."""
