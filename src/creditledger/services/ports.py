"""What services need from the outside world, as protocols.

The SQL implementation lives in ``adapters/db``; the composition root
(``bootstrap.py``) hands it to the services. A unit of work is one database
transaction: repositories never commit, the service does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol, runtime_checkable

from creditledger.domain.accounts import (
    BillingMode,
    Member,
    Principal,
    Role,
    Team,
    TeamReads,
    TokenKind,
)
from creditledger.domain.audit import AuditEvent, AuditFilter
from creditledger.domain.grants import Grant
from creditledger.domain.history import HistoryEntry, HistoryFilter
from creditledger.domain.holds import Hold, Placement
from creditledger.domain.intake import Delivery, Rejected
from creditledger.domain.invoices import (
    Attempt,
    AttemptOutcome,
    CreditsApplied,
    Invoice,
    InvoiceStatus,
    Period,
    UsageTotal,
)
from creditledger.domain.ledger import Transaction
from creditledger.domain.money import Nanos
from creditledger.domain.notices import Notice, NoticeState, Webhook
from creditledger.domain.payments import (
    CheckoutPage,
    CheckoutRequest,
    CheckoutSession,
    OffSessionCharge,
    Payment,
    PaymentEvent,
    PaymentOutcome,
    PaymentReview,
    PaymentStatus,
    SavedPaymentMethod,
)
from creditledger.domain.pricing import Price, PriceBook, TeamPricing
from creditledger.domain.promo_codes import PromoCode
from creditledger.domain.purchases import Purchase
from creditledger.domain.recharge import AutoRecharge, Recharge, RechargeStatus
from creditledger.domain.sessions import WebSession
from creditledger.domain.usage import UsageLocks, UsageReads, UsageRecord
from creditledger.domain.usage_report import UsageRow


class Users(Protocol):
    def add(self, user_id: str, email: str, password_hash: str, at: datetime) -> None: ...
    def find_by_email(self, email: str) -> tuple[str, str] | None:
        """(user id, password hash) of that email, or None."""
        ...

    def email_of(self, user_id: str) -> str | None: ...


class Teams(Protocol):
    def add(self, team_id: str, name: str, at: datetime) -> None: ...
    def get(self, team_id: str) -> Team | None: ...
    def exists(self, team_id: str) -> bool: ...
    def lock(self, team_id: str) -> Team | None:
        """Load the team and hold its row lock until the end of the transaction."""
        ...

    def revisions_with_price_version(self, team_ids: Sequence[str]) -> tuple[dict[str, int], int]:
        """The revisions of the teams that exist among ``team_ids`` and the newest price
        book version id: what tells an authorization that its memory is still right."""
        ...

    def lock_many(self, team_ids: Sequence[str]) -> dict[str, Team]:
        """Lock the teams that exist among ``team_ids``, in id order (no deadlocks)."""
        ...

    def lock_for_usage(self, team_ids: Sequence[str]) -> UsageLocks:
        """:meth:`lock_many`, with what charging their usage needs to know of them, in
        one read: a batch's team locks, its prices' check and who watches the teams."""
        ...

    def set_billing(self, team_id: str, mode: BillingMode, tier_override: int | None) -> None: ...
    def add_lifetime_paid(self, team_id: str, amount: Nanos) -> None: ...
    def credit_balance(self, team_id: str) -> Nanos:
        """Σ remaining of the team's grants (the cached credit balance)."""
        ...


class Members(Protocol):
    def add(self, team_id: str, user_id: str, role: Role, at: datetime) -> None: ...
    def role_of(self, team_id: str, user_id: str) -> Role | None: ...
    def in_team(self, team_id: str) -> list[Member]: ...
    def set_role(self, team_id: str, user_id: str, role: Role) -> None: ...
    def remove(self, team_id: str, user_id: str) -> None: ...
    def teams_of(self, user_id: str) -> list[str]:
        """Ids of the user's teams, oldest membership first."""
        ...

    def memberships_of(self, user_id: str) -> list[tuple[Team, Role]]:
        """The user's teams and their role in each, oldest membership first."""
        ...

    def page(self, team_id: str, after: tuple[datetime, str] | None, limit: int) -> list[Member]:
        """Up to ``limit`` members in ``in_team`` order, after (joined at, user id)."""
        ...


class Tokens(Protocol):
    def add(
        self,
        token_id: str,
        token_hash: str,
        kind: TokenKind,
        user_id: str | None,
        name: str,
        at: datetime,
    ) -> None: ...
    def principal_for(self, token_hash: str) -> Principal | None: ...
    def live_among(self, token_hashes: Sequence[str]) -> set[str]:
        """Those of ``token_hashes`` whose tokens exist and are not revoked."""
        ...


class ChangeFeed(Protocol):
    """Notices of committed changes pushed by the database (``team:<id>``, ``prices``,
    ``tokens``, ``?`` for "something: check what you hold", or ``*`` for anything),
    delivered to the callback it was made with."""

    @property
    def live(self) -> bool:
        """Connected and listening: no notice can be missed while this holds."""
        ...

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def poll(self) -> None:
        """Look for changes now, where they are not pushed (SQLite); called before
        each decision, so it must cost next to nothing."""
        ...


class ChangeCounter(Protocol):
    """A number that moves whenever anything is committed (SQLite's data version)."""

    def __call__(self) -> int: ...
    def close(self) -> None: ...


class HoldBook(Protocol):
    """Open holds, shared by every process of a deployment (``domain.holds``).

    Each call is atomic: two places racing for the last of a team's credit can not both
    fit, and a hold ends once however many ways try to end it at the same moment."""

    def place(self, hold: Hold, cap: Nanos | None, now: datetime) -> Placement:
        """Place ``hold`` if it fits beside the team's open holds under ``cap`` (None: no
        limit; the rule is ``domain.holds.fits``). The placement names the open hold the
        team already has for ``hold.request_id`` instead, if any, and no hold when it
        does not fit; and always the team's open total before the call."""
        ...

    def open_total(self, team_id: str, now: datetime) -> Nanos:
        """Σ amount of the team's holds open at ``now``."""
        ...

    def release(self, hold_id: str, now: datetime) -> Hold | None:
        """End the hold if it is still open; the hold ended by this call, else None."""
        ...

    def release_requests(self, team_id: str, request_ids: list[str], now: datetime) -> int:
        """End the team's open holds of these request ids; how many this call ended."""
        ...


class UsageIntake(Protocol):
    """A stream of usage events shared by several consumers (NATS JetStream). A message
    fetched and not acknowledged in time is delivered again, to any of them. Every call
    raises ``ServiceUnavailable`` when the stream does not answer."""

    def fetch(self, max_messages: int, wait_seconds: float) -> list[Delivery]:
        """Up to ``max_messages`` messages; none after ``wait_seconds`` without any."""
        ...

    def reject(self, rejected: Sequence[Rejected]) -> None:
        """Keep refused messages, with their code, where operators find them; returns
        once they are stored."""
        ...

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Done with these: they are not delivered again."""
        ...

    def retry_later(self, deliveries: Sequence[Delivery], delay_seconds: float) -> None:
        """Deliver these again after ``delay_seconds``."""
        ...


class WebSessions(Protocol):
    """Signed-in browsers, found by the hash of the cookie's secret."""

    def add(self, session: WebSession, session_hash: str) -> None: ...
    def find(self, session_hash: str) -> WebSession | None: ...
    def revoke(self, session_hash: str, at: datetime) -> None: ...
    def revoke_all_of(self, user_id: str, at: datetime) -> int:
        """End every live session of the user; how many there were."""
        ...

    def delete_ended_before(self, at: datetime) -> int:
        """Forget the sessions that expired or were revoked before ``at``; how many."""
        ...


class Grants(Protocol):
    def add(self, grant: Grant, note: str | None) -> None: ...
    def get(self, team_id: str, grant_id: str) -> Grant | None: ...
    def for_team(self, team_id: str) -> list[Grant]:
        """All of a team's grants, in consumption order as the SQL sorts them."""
        ...

    def set_voided(self, grant_id: str, at: datetime) -> None: ...
    def for_teams(self, team_ids: Sequence[str]) -> dict[str, list[Grant]]:
        """The grants of several teams, each list in consumption order."""
        ...

    def to_warn_of_expiry(self, start: datetime, end: datetime, limit: int) -> list[Grant]:
        """Grants not voided, with credit left, expiring after ``start`` and by ``end``,
        of teams with an enabled webhook, not warned of yet."""
        ...

    def due_for_expiry(self, cutoff: datetime, limit: int) -> list[tuple[str, str]]:
        """(team id, grant id) of unvoided grants with remaining > 0 that expired
        at or before ``cutoff``."""
        ...


class Ledger(Protocol):
    def post(self, tx: Transaction, tx_id: str, at: datetime) -> None:
        """Append a balanced transaction and move every cached balance it touches.

        Team-side postings get the team's credit balance after them.
        """
        ...

    def post_many(
        self,
        txs: Sequence[tuple[str, Transaction]],
        at: datetime,
        credit: Mapping[str, Nanos] | None = None,
    ) -> None:
        """``post`` for many transactions at once, with set-based writes. ``credit``:
        the teams' credit balances as read with their locks, when the caller has them
        (then the writes need no answer, and can travel together)."""
        ...

    def history(
        self, team_id: str, flt: HistoryFilter, before_seq: int | None, limit: int
    ) -> list[HistoryEntry]: ...


class Pricing(Protocol):
    def books(self) -> list[PriceBook]: ...
    def latest_book_id(self) -> int: ...
    def add_book(self, prices: Sequence[Price], effective_from: datetime, at: datetime) -> None: ...
    def for_teams(self, team_ids: Sequence[str]) -> dict[str, list[TeamPricing]]: ...
    def for_all_teams(self) -> dict[str, list[TeamPricing]]:
        """Every team's pricing versions, oldest first, by team id."""
        ...

    def add_team_pricing(self, team_id: str, pricing: TeamPricing, at: datetime) -> None: ...


class Usage(Protocol):
    def fingerprints(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Fingerprints of already stored events among (team id, event id) keys."""
        ...

    def add(self, rows: Sequence[UsageRecord]) -> None: ...
    def latest(self, team_id: str) -> tuple[datetime, str] | None:
        """The team's latest charged event, as (occurred_at, event id)."""
        ...

    def charged_since(self, team_id: str, since: datetime) -> list[UsageRecord]:
        """The team's events at or after ``since``, in (time, id) order."""
        ...

    def reallocate(self, rows: Sequence[UsageRecord]) -> None:
        """Store the new split (draws, uncovered) of re-allocated events."""
        ...

    def subjects_since(
        self, since: datetime, prices: Sequence[Price]
    ) -> set[tuple[str, str | None, str | None]]:
        """(product, model, gpu) of all teams' events since ``since`` that one of
        ``prices`` could apply to."""
        ...

    def report(
        self, team_id: str, since: datetime, until: datetime, bucket_micros: int, by_model: bool
    ) -> list[UsageRow]: ...


class Idempotency(Protocol):
    def claim(
        self, caller: str, key: str, request_hash: str, at: datetime, ttl_hours: int
    ) -> tuple[str, int | None, str | None] | None:
        """Insert a claim. None when it is new; else the existing (hash, status, body)."""
        ...

    def complete(self, caller: str, key: str, status: int, body: str) -> bool: ...
    def release(self, caller: str, key: str) -> None: ...
    def take_over_stale(
        self, caller: str, key: str, request_hash: str, now: datetime, stale_before: datetime
    ) -> bool:
        """Restart a claim whose request died before finishing (same body only)."""
        ...


class Payments(Protocol):
    """Purchases, provider payments, webhook events and saved payment methods."""

    def add_purchase(self, purchase: Purchase, provider: str) -> None: ...
    def purchase(self, purchase_id: str) -> Purchase | None: ...
    def attach_checkout(self, purchase_id: str, session: CheckoutSession, at: datetime) -> None: ...
    def set_purchase_status(
        self,
        purchase_id: str,
        status: PaymentStatus,
        provider_payment_id: str | None,
        failure_reason: str | None,
        at: datetime,
    ) -> None: ...
    def add_payment(self, payment: Payment, at: datetime) -> bool:
        """Insert unless this provider payment is known (UNIQUE); True when inserted."""
        ...

    def set_payment_grant(self, payment_id: str, grant_id: str) -> None: ...
    def payment(self, provider: str, provider_payment_id: str) -> Payment | None: ...
    def update_payment(
        self,
        payment_id: str,
        status: PaymentStatus,
        refunded: Nanos,
        refund_written_off: Nanos,
        at: datetime,
    ) -> None: ...
    def pending_purchases_before(self, before: datetime, limit: int) -> list[Purchase]:
        """Purchases still pending that were made at or before ``before``, oldest first."""
        ...

    def add_review(self, review: PaymentReview, review_id: str, at: datetime) -> bool:
        """Keep a refused payment for review, once per (provider, payment, reason);
        True when new."""
        ...

    def under_review(self, provider: str, provider_payment_id: str) -> bool:
        """Whether this provider payment was refused and kept for review."""
        ...

    def record_event(self, provider: str, event_id: str, type: str, at: datetime) -> bool:
        """Insert unless this event was seen (PRIMARY KEY); True when new."""
        ...

    def saved_method(self, team_id: str) -> SavedPaymentMethod | None: ...
    def save_method(
        self,
        team_id: str,
        provider: str,
        customer_ref: str,
        payment_method_ref: str | None,
        at: datetime,
    ) -> None:
        """Remember the team's customer (and card, when given; a None keeps the old one)."""
        ...


class Recharges(Protocol):
    def settings(self, team_id: str) -> AutoRecharge | None: ...
    def save_settings(self, team_id: str, settings: AutoRecharge, at: datetime) -> None: ...
    def start(self, recharge: Recharge) -> bool:
        """Insert a pending recharge unless the team has one in flight; True when inserted."""
        ...

    def get(self, recharge_id: str) -> Recharge | None: ...
    def set_status(
        self,
        recharge_id: str,
        status: RechargeStatus,
        provider_payment_id: str | None,
        failure_reason: str | None,
        at: datetime,
    ) -> None: ...
    def charged_since(self, team_id: str, since: datetime) -> Nanos:
        """Σ amount of the team's pending and succeeded recharges created since ``since``."""
        ...

    def pending_created_before(self, before: datetime, limit: int) -> list[Recharge]: ...
    def enabled_among(self, team_ids: Sequence[str]) -> list[str]:
        """Those of ``team_ids`` with auto-recharge turned on."""
        ...

    def teams_below_threshold(self, now: datetime, limit: int) -> list[str]:
        """Teams with auto-recharge on whose credit usable at ``now`` is below threshold."""
        ...


class PromoCodes(Protocol):
    def add(self, code: PromoCode, created_by: str) -> bool:
        """Store a new code; False (nothing stored) when its normal form is taken."""
        ...

    def get(self, promo_id: str) -> PromoCode | None: ...
    def find(self, code: str) -> PromoCode | None:
        """The code with this normal form."""
        ...

    def set_disabled(self, promo_id: str, at: datetime | None) -> None:
        """Disable at ``at`` (an already disabled code keeps its time), or enable on None."""
        ...

    def claim(self, promo_id: str, at: datetime) -> bool:
        """Count one redemption, in one statement, only if at ``at`` the code is enabled,
        in its redemption window and under its limit. False when it is not."""
        ...

    def record_redemption(
        self,
        redemption_id: str,
        promo_id: str,
        team_id: str,
        grant_id: str,
        user_id: str,
        at: datetime,
    ) -> bool:
        """Record the team's redemption; False when the team already has one (a UNIQUE
        constraint decides, whatever runs concurrently)."""
        ...

    def redeemed_by_team(self, promo_id: str, team_id: str) -> bool: ...


class Invoices(Protocol):
    """Invoices and the usage each one billed (``adapters/db/invoices.py``)."""

    def get(self, team_id: str, invoice_id: str) -> Invoice | None: ...
    def by_id(self, invoice_id: str) -> Invoice | None: ...
    def latest(self, team_id: str) -> Invoice | None:
        """The team's stored invoice of the latest period."""
        ...

    def page(
        self, team_id: str, status: InvoiceStatus | None, before_period: datetime | None, limit: int
    ) -> list[Invoice]:
        """Stored invoices, newest period first, from before ``before_period``."""
        ...

    def latest_of(self, team_ids: Sequence[str]) -> dict[str, Invoice]:
        """Each team's stored invoice of its latest period (teams with none left out)."""
        ...

    def has_uncollectible(self, team_id: str) -> bool: ...
    def due_for_charge(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(team id, invoice id) of open invoices whose card is to be charged by ``now``."""
        ...

    def teams_to_open(self, period: Period, after_team: str | None, limit: int) -> list[str]:
        """Teams with unbilled usage before ``period.end`` and no invoice for it yet."""
        ...

    def open_usage(self, team_id: str, around: Period) -> list[UsageTotal]:
        """What no invoice has billed yet, per (product, model, month)."""
        ...

    def billed_usage(self, invoice_id: str, around: Period) -> list[UsageTotal]: ...
    def billed_usage_of(
        self, invoice_ids: Sequence[str], around: Period
    ) -> dict[str, list[UsageTotal]]: ...
    def bill_usage_of(self, invoice_ids: dict[str, str], before: datetime) -> int:
        """Mark each team's unbilled usage before ``before`` (team id → invoice id)."""
        ...

    def bill_usage(self, team_id: str, invoice_id: str, before: datetime) -> int:
        """Mark the unbilled usage before ``before`` as billed by the invoice."""
        ...

    def credits_applied(self, team_id: str, period: Period) -> CreditsApplied: ...
    def credits_applied_of(
        self, team_ids: Sequence[str], period: Period
    ) -> dict[str, CreditsApplied]: ...
    def next_sequences(self, count: int) -> int:
        """Take the next ``count`` invoice numbers, in this transaction; the first."""
        ...

    def add(self, invoice: Invoice, sequence: int | None, at: datetime) -> bool:
        """Insert; False when the team has an invoice for that period already."""
        ...

    def add_many(self, invoices: Sequence[tuple[Invoice, int | None]], at: datetime) -> int:
        """Insert, leaving out those whose period is taken; how many were inserted."""
        ...

    def update(self, invoice: Invoice, at: datetime) -> None: ...
    def start_attempt(self, invoice_id: str, attempt: Attempt) -> bool:
        """Insert a pending attempt; False when another run took that number."""
        ...

    def finish_attempt(
        self,
        invoice_id: str,
        number: int,
        outcome: AttemptOutcome,
        reason: str | None,
        provider_payment_id: str | None,
        at: datetime,
    ) -> None: ...
    def pending_attempts_before(self, before: datetime, limit: int) -> list[tuple[str, str, int]]:
        """(team id, invoice id, attempt number) of charges still pending since ``before``."""
        ...


class AuditLog(Protocol):
    """The append-only operator audit log."""

    def record(self, event: AuditEvent) -> None: ...
    def page(self, flt: AuditFilter, before_seq: int | None, limit: int) -> list[AuditEvent]:
        """Up to ``limit`` matching events, newest first, below ``before_seq`` if given."""
        ...


class Notices(Protocol):
    """Notification webhooks, the notices outbox (``domain.notices``) and once-only marks."""

    def webhook(self, team_id: str) -> Webhook | None: ...
    def teams_with_webhooks(self, team_ids: Sequence[str]) -> set[str]:
        """The teams among ``team_ids`` with an enabled webhook."""
        ...

    def save_webhook(self, webhook: Webhook, at: datetime) -> None: ...
    def delete_webhook(self, team_id: str) -> bool: ...
    def disable_webhook(self, team_id: str, reason: str, at: datetime) -> None: ...
    def add(self, notice: Notice) -> None: ...
    def get(self, notice_id: str) -> Notice | None: ...
    def due(self, now: datetime, limit: int) -> list[Notice]:
        """Pending notices whose next try is due and that no runner holds."""
        ...

    def claim(self, notice_id: str, attempts: int, now: datetime, until: datetime) -> bool:
        """Hold the notice for one try until ``until`` while it is due, unclaimed and
        has had ``attempts`` tries; False otherwise (another runner has or had it)."""
        ...

    def finish_try(
        self,
        notice_id: str,
        claimed_until: datetime,
        state: NoticeState,
        attempts: int,
        next_attempt_at: datetime | None,
        status: int | None,
        error: str | None,
        delivered_at: datetime | None,
    ) -> bool:
        """Record the try of the claim ending at ``claimed_until``; False if it was lost."""
        ...

    def page(self, team_id: str, before_id: str | None, limit: int) -> list[Notice]:
        """Newest first, older than ``before_id``."""
        ...

    def mark(self, team_id: str, key: str, at: datetime) -> bool:
        """Remember ``key``; True when it was not remembered yet."""
        ...

    def delete_ended_before(self, at: datetime) -> int:
        """Forget delivered and failed notices created before ``at``; how many."""
        ...


class NoticeSender(Protocol):
    """Delivers one notice over HTTP, refusing unsafe addresses (an adapter)."""

    def check_url(self, url: str) -> str | None:
        """Why ``url`` may not receive notices, or None when it may."""
        ...

    def send(
        self, url: str, secret: str, message_id: str, body: bytes
    ) -> tuple[int | None, str | None]:
        """The receiver's status and, unless it took the notice, why not (signed at the
        moment of sending)."""
        ...

    def new_secret(self) -> str: ...


class UnitOfWork(Protocol):
    @property
    def users(self) -> Users: ...
    @property
    def teams(self) -> Teams: ...
    @property
    def members(self) -> Members: ...
    @property
    def tokens(self) -> Tokens: ...
    @property
    def web_sessions(self) -> WebSessions: ...
    @property
    def grants(self) -> Grants: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def idempotency(self) -> Idempotency: ...
    @property
    def pricing(self) -> Pricing: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def payments(self) -> Payments: ...
    @property
    def recharges(self) -> Recharges: ...
    @property
    def promo_codes(self) -> PromoCodes: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def invoices(self) -> Invoices: ...
    @property
    def notices(self) -> Notices: ...

    def commit(self) -> None: ...
    def new_id(self, prefix: str) -> str: ...
    def read_for_usage(self, keys: Sequence[tuple[str, str]]) -> UsageReads:
        """Lock the teams of ``keys`` (team id, event id), in id order, and read with
        them the fingerprints of those events already stored and the teams' pricing
        and grants: all in one round trip where the database allows it."""
        ...

    def read_teams(self, team_ids: Sequence[str]) -> TeamReads:
        """What an authorization decides from, for the teams that exist among
        ``team_ids``: the teams, the newest price book version id, their grants and
        their pricing, in one round trip where the database allows it."""
        ...

    def together(self, rows: int) -> AbstractContextManager[None]:
        """The ingestion writes inside (``Usage.add``, ``Ledger.post_many`` given the
        balances), of about ``rows`` rows per table, travel to the database together
        where that is faster (one statement for a few rows; many rows go by COPY);
        their errors surface at the end of the block. Nothing inside may need an answer
        from the database."""
        ...


class UnitOfWorkFactory(Protocol):
    def dispose(self) -> None:
        """Close every pooled connection."""
        ...

    def __call__(
        self, *, write: bool = True
    ) -> AbstractContextManager[UnitOfWork, bool | None]: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, password_hash: str, password: str) -> bool: ...


class RateLimiter(Protocol):
    """At most ``limit`` hits per ``key`` in any window of ``window_seconds``."""

    def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one hit; False when it is over the limit."""
        ...

    def test(self, key: str, limit: int, window_seconds: int) -> bool:
        """Would one more hit be allowed? Counts nothing."""
        ...

    def retry_after(self, key: str, limit: int, window_seconds: int) -> int:
        """Seconds until one more hit would be allowed."""
        ...


class SchemaStatus(Protocol):
    def problem(self) -> str | None:
        """None when the database answers and is migrated to the newest revision."""
        ...


class Invariants(Protocol):
    def violations(self) -> Iterator[str]: ...


class PaymentProvider(Protocol):
    """A payment provider (Stripe, or the built-in sandbox). Every call may reach the
    network: services never hold a database transaction across one."""

    @property
    def name(self) -> str: ...

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """A hosted payment page for a purchase that saves the card for later."""
        ...

    def charge_off_session(self, charge: OffSessionCharge) -> PaymentOutcome:
        """Charge the saved card now; the same idempotency key never charges twice."""
        ...

    def checkout_outcome(self, session_id: str) -> PaymentOutcome | None:
        """The payment of a checkout session, or None while nothing is settled."""
        ...

    def expire_checkout(self, session_id: str) -> PaymentOutcome | None:
        """Close an unpaid checkout so that it can not be paid any more. None when it is
        closed unpaid; the outcome of its payment when it was settled before."""
        ...

    def recent_payments(self, since: datetime) -> list[PaymentOutcome]:
        """Succeeded payments made for us since ``since`` (for reconciliation)."""
        ...

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """Check the signature on the raw body and parse it; ``InvalidSignature`` if not."""
        ...


@runtime_checkable
class SandboxCheckout(Protocol):
    """The sandbox provider's own payment page (``GET /sandbox/checkout/{id}``)."""

    def checkout_page(self, session_id: str) -> CheckoutPage | None: ...
    def pay(self, session_id: str, card_number: str) -> PaymentOutcome:
        """Pay with a test card; ``InvalidRequest`` for any other number."""
        ...
