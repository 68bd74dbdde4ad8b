"""Notices to a team's webhook: written with their cause, delivered by a job.

:func:`notify` is called inside the unit of work of the change that causes a notice, so
the notice commits or rolls back with it. :func:`deliver_due` (the
``deliver_notifications`` job) sends what is due, each notice by one runner at a time,
and tries again on the schedule of ``domain.notices`` until it is taken or every try
failed, which disables the webhook with the reason. The admin's endpoints set, show,
rotate, test and remove the webhook and page through the delivery log.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from creditledger.domain.accounts import Principal
from creditledger.domain.audit import AuditAction
from creditledger.domain.availability import usable_credit
from creditledger.domain.errors import InvalidRequest, NotFound, WebhookDisabled
from creditledger.domain.grants import Grant
from creditledger.domain.invoices import Invoice
from creditledger.domain.money import Nanos, format_amount
from creditledger.domain.notices import (
    CLAIM,
    EXPIRING_WITHIN,
    LOG_KEPT,
    MAX_URL_LENGTH,
    PING,
    Notice,
    NoticeState,
    Webhook,
    billing_path,
    check_events,
    expiring_mark,
    fell_below,
    instant,
    low_balance_threshold,
    payload,
    retry_at,
)
from creditledger.services import audit
from creditledger.services.access import Need, check_team_access
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork

log = logging.getLogger(__name__)

NO_WEBHOOK = "This team has no notification webhook."
DELIVERY_BATCH = 100
EXPIRY_SCAN_LIMIT = 10_000
LOW_BALANCE = "balance.low"


def billing_url(ctx: Context, team_id: str) -> str:
    return ctx.settings.public_base_url.rstrip("/") + billing_path(team_id)


def notify(
    uow: UnitOfWork,
    ctx: Context,
    team_id: str,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
) -> Notice | None:
    """Put a notice in the outbox, in ``uow``, if the team's webhook wants it."""
    webhook = uow.notices.webhook(team_id)
    if webhook is None or not webhook.wants(event_type):
        return None
    notice = Notice(
        id=uow.new_id("msg"),
        team_id=team_id,
        type=event_type,
        payload=payload(event_type, team_id, now, billing_url(ctx, team_id), data),
        created_at=now,
        state=NoticeState.PENDING,
        attempts=0,
        next_attempt_at=now,
    )
    uow.notices.add(notice)
    return notice


def low_balance_after(
    uow: UnitOfWork,
    ctx: Context,
    before: dict[str, list[Grant]],
    now: datetime,
    written_off: Mapping[str, Nanos] | None = None,
    watched: Collection[str] | None = None,
) -> int:
    """``balance.low`` for the teams whose available credit fell below their threshold
    in ``uow``: ``before`` holds their grants as read under their lock before the change
    (and ``written_off`` what an expiry took that ``before`` no longer counts as usable).
    A fall below is seen once, by the change that makes it, under the team's lock: the
    next one can only come after the credit was back at or above the threshold. Only
    teams with a webhook are read again; ``watched``, when given, says which those are
    (read with the teams' locks). How many notices were written."""
    if watched is None:
        watched = uow.notices.teams_with_webhooks(sorted(before))
    watched = sorted(set(watched) & before.keys())
    if not watched:
        return 0
    after = uow.grants.for_teams(watched)
    written = 0
    for team_id in watched:
        settings = uow.recharges.settings(team_id)
        threshold = low_balance_threshold(
            settings.threshold if settings is not None and settings.enabled else None
        )
        was = usable_credit(before[team_id], None, now) + (written_off or {}).get(team_id, 0)
        left = usable_credit(after[team_id], None, now)
        if fell_below(was, left, threshold):
            data = {"available": format_amount(left), "threshold": format_amount(threshold)}
            written += notify(uow, ctx, team_id, LOW_BALANCE, data, now) is not None
    return written


def grant_expired(uow: UnitOfWork, ctx: Context, grant: Grant, lost: Nanos, now: datetime) -> None:
    """``credits.expired``: ``lost`` of ``grant`` expired unused."""
    if lost <= 0:
        return
    data = {
        "grant_id": grant.id,
        "kind": grant.kind.value,
        "expired": format_amount(lost),
        "expired_at": instant(grant.expires_at or now),
    }
    notify(uow, ctx, grant.team_id, "credits.expired", data, now)


def notify_expiring(ctx: Context) -> int:
    """The scan: ``credits.expiring`` once per grant that has credit left and expires
    within 7 days, for teams whose webhook wants it. Safe twice at once: the mark is
    taken (``INSERT … ON CONFLICT DO NOTHING``) before the notice."""
    now = ctx.clock.now()
    written = 0
    with ctx.uow() as uow:
        candidates = uow.grants.to_warn_of_expiry(now, now + EXPIRING_WITHIN, EXPIRY_SCAN_LIMIT)
        for grant in candidates:
            if grant.expires_soon_in_days(now) is None:
                continue  # the scan's SQL is wider than the rule; the rule decides
            webhook = uow.notices.webhook(grant.team_id)
            if webhook is None or not webhook.wants("credits.expiring"):
                continue  # marked only when told, so a later subscription still hears
            if not uow.notices.mark(grant.team_id, expiring_mark(grant.id), now):
                continue
            data = {
                "grant_id": grant.id,
                "kind": grant.kind.value,
                "remaining": format_amount(grant.remaining),
                "expires_at": instant(grant.expires_at or now),
            }
            written += notify(uow, ctx, grant.team_id, "credits.expiring", data, now) is not None
        uow.commit()
    return written


def payment_failed(
    uow: UnitOfWork,
    ctx: Context,
    team_id: str,
    what: str,
    amount: Nanos,
    reason: str,
    reference: str,
    now: datetime,
) -> None:
    """``payment.failed``: a purchase, recharge or invoice charge was declined."""
    data = {"payment": what, "reference": reference, "amount": format_amount(amount)}
    notify(uow, ctx, team_id, "payment.failed", {**data, "reason": reason}, now)


def invoice_notice(
    uow: UnitOfWork,
    ctx: Context,
    event_type: str,
    invoice: Invoice,
    now: datetime,
    **extra: str | None,
) -> None:
    """``invoice.opened``, ``invoice.paid`` or ``invoice.payment_failed``."""
    data: dict[str, Any] = {
        "invoice_id": invoice.id,
        "number": invoice.number,
        "period": f"{invoice.period.start:%Y-%m}",
        "total": format_amount(invoice.total),
        **extra,
    }
    notify(uow, ctx, invoice.team_id, event_type, data, now)


# --- the admin's endpoints -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookView:
    webhook: Webhook
    secret: str | None
    """Shown when the webhook is created and when its secret is rotated, never after."""


def _check_url(ctx: Context, url: object) -> str:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(
            f"`url` must be a URL of at most {MAX_URL_LENGTH} characters.", param="url"
        )
    problem = ctx.notifier.check_url(url)
    if problem is not None:
        raise InvalidRequest(f"`url` can not receive notices: {problem}", param="url")
    return url


def set_webhook(
    ctx: Context, principal: Principal, team_id: str, url: object, events: object
) -> WebhookView:
    """Create or replace the team's webhook; a new one gets a new secret."""
    checked = _check_url(ctx, url)
    wanted = check_events(events)
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN, lock=True)
        now = ctx.clock.now()
        current = uow.notices.webhook(team_id)
        secret = None if current is not None else ctx.notifier.new_secret()
        webhook = Webhook(
            team_id=team_id,
            url=checked,
            events=wanted,
            secret=current.secret if current is not None else str(secret),
            created_at=current.created_at if current is not None else now,
        )  # saving again enables a disabled webhook
        uow.notices.save_webhook(webhook, now)
        uow.commit()
    return WebhookView(webhook, secret)


def get_webhook(ctx: Context, principal: Principal, team_id: str) -> Webhook:
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.BILLING_READ)
        webhook = uow.notices.webhook(team_id)
    if webhook is None:
        raise NotFound(NO_WEBHOOK)
    audit.record_read(ctx, principal, AuditAction.NOTIFICATION_WEBHOOK_READ, team_id)
    return webhook


def find_webhook(ctx: Context, principal: Principal, team_id: str) -> Webhook | None:
    """:func:`get_webhook`, None when there is none (the Billing page)."""
    try:
        return get_webhook(ctx, principal, team_id)
    except NotFound:
        with ctx.uow(write=False) as uow:
            check_team_access(uow, principal, team_id, Need.BILLING_READ)
        return None


def delete_webhook(ctx: Context, principal: Principal, team_id: str) -> None:
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN, lock=True)
        if not uow.notices.delete_webhook(team_id):
            raise NotFound(NO_WEBHOOK)
        uow.commit()


def rotate_secret(ctx: Context, principal: Principal, team_id: str) -> WebhookView:
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN, lock=True)
        current = uow.notices.webhook(team_id)
        if current is None:
            raise NotFound(NO_WEBHOOK)
        secret = ctx.notifier.new_secret()
        webhook = replace(current, secret=secret)
        uow.notices.save_webhook(webhook, ctx.clock.now())
        uow.commit()
    return WebhookView(webhook, secret)


def send_test(ctx: Context, principal: Principal, team_id: str) -> Notice:
    """A ``ping`` written to the outbox and tried at once; the notice as it ended."""
    with ctx.uow() as uow:
        check_team_access(uow, principal, team_id, Need.ADMIN)
        now = ctx.clock.now()
        webhook = uow.notices.webhook(team_id)
        if webhook is None:
            raise NotFound(NO_WEBHOOK)
        if webhook.disabled_at is not None:
            raise WebhookDisabled("The webhook is disabled: save its settings to turn it on again.")
        notice = notify(uow, ctx, team_id, PING, {"message": "A test from the Billing page."}, now)
        uow.commit()
    if notice is None:  # disabled in the meantime
        raise WebhookDisabled("The webhook is disabled: save its settings to turn it on again.")
    _try(ctx, notice)
    with ctx.uow(write=False) as uow:
        ended = uow.notices.get(notice.id)
    assert ended is not None
    return ended


@dataclass(frozen=True, slots=True)
class NoticePage:
    notices: list[Notice]
    next_cursor: str | None


def list_notices(
    ctx: Context, principal: Principal, team_id: str, cursor: str | None, limit: int
) -> NoticePage:
    codec = ctx.cursors()
    before = None if cursor is None else codec.open("notifications", team_id, cursor).decode()
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.BILLING_READ)
        rows = uow.notices.page(team_id, before, limit + 1)
    audit.record_read(ctx, principal, AuditAction.NOTIFICATIONS_READ, team_id)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = codec.seal("notifications", team_id, rows[-1].id.encode()) if more else None
    return NoticePage(rows, next_cursor)


# --- delivery --------------------------------------------------------------------------


def deliver_due(ctx: Context, limit: int = DELIVERY_BATCH) -> int:
    """Try every notice that is due (up to ``limit``); how many were delivered. After a
    team's notice fails, its other notices wait for the next run, so one unreachable
    receiver can not hold up everyone else's."""
    now = ctx.clock.now()
    with ctx.uow(write=False) as uow:
        due = uow.notices.due(now, limit)
    failing: set[str] = set()
    delivered = 0
    for notice in due:
        if notice.team_id in failing:
            continue
        outcome = _try(ctx, notice)
        if outcome is False:
            failing.add(notice.team_id)
        delivered += outcome is True
    return delivered


def _try(ctx: Context, notice: Notice) -> bool | None:
    """One delivery try of ``notice`` by this runner: True when delivered, False when
    not, None when another runner had it (or had already tried it since it was read)."""
    now = ctx.clock.now()
    until = now + CLAIM
    with ctx.uow() as uow:
        if not uow.notices.claim(notice.id, notice.attempts, now, until):
            return None
        webhook = uow.notices.webhook(notice.team_id)
        if webhook is None or webhook.disabled_at is not None:
            # Not sent, and not counted as a failure of the receiver.
            why = NO_WEBHOOK if webhook is None else "The webhook was disabled; not sent."
            uow.notices.finish_try(
                notice.id, until, NoticeState.FAILED, notice.attempts, None, None, why, None
            )
            uow.commit()
            return False
        uow.commit()
    body = orjson.dumps(notice.payload)
    status, error = ctx.notifier.send(webhook.url, webhook.secret, notice.id, body)
    attempts = notice.attempts + 1
    done = ctx.clock.now()
    with ctx.uow() as uow:
        if error is None:
            uow.notices.finish_try(
                notice.id, until, NoticeState.DELIVERED, attempts, None, status, None, done
            )
        else:
            again = retry_at(attempts, done, random.uniform(-1.0, 1.0))
            state = NoticeState.PENDING if again is not None else NoticeState.FAILED
            finished = uow.notices.finish_try(
                notice.id, until, state, attempts, again, status, error, None
            )
            if finished and again is None:
                reason = f"Every try of notice {notice.id} failed; the last: {error}"
                uow.notices.disable_webhook(notice.team_id, reason, done)
        uow.commit()
    if error is not None:
        log.info("notice %s to team %s not delivered: %s", notice.id, notice.team_id, error)
    return error is None


def purge_notices(ctx: Context) -> int:
    """The delivery log keeps delivered and failed notices for 30 days."""
    with ctx.uow() as uow:
        gone = uow.notices.delete_ended_before(ctx.clock.now() - LOG_KEPT)
        uow.commit()
    return gone
