"""A team's notification webhook and the log of the notices sent to it (admins)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from creditledger.entrypoints.api.deps import Caller, Ctx, Cursor, Limit
from creditledger.entrypoints.api.openapi import errors
from creditledger.entrypoints.api.schemas import (
    NotificationPagePublic,
    NotificationPublic,
    NotificationWebhookPublic,
    NotificationWebhookUpdate,
    notification_public,
    notification_webhook_public,
)
from creditledger.services import notices

router = APIRouter(prefix="/v1/teams/{team_id}", tags=["notices"])


@router.put("/notification-webhook")
def put_notification_webhook(
    team_id: str, body: NotificationWebhookUpdate, ctx: Ctx, caller: Caller
) -> NotificationWebhookPublic:
    """Send the team's notices to `url`, signed in the Standard Webhooks format.

    The answer carries the signing `secret` when the webhook is new; replacing the URL or
    the events keeps the secret. Saving a disabled webhook enables it again.
    """
    view = notices.set_webhook(ctx, caller, team_id, body.url, body.events)
    return notification_webhook_public(view.webhook, view.secret)


@router.get("/notification-webhook")
def get_notification_webhook(team_id: str, ctx: Ctx, caller: Caller) -> NotificationWebhookPublic:
    """The webhook, without its secret; `disabled_reason` says why notices stopped."""
    return notification_webhook_public(notices.get_webhook(ctx, caller, team_id))


@router.delete("/notification-webhook", status_code=204)
def delete_notification_webhook(team_id: str, ctx: Ctx, caller: Caller) -> Response:
    """Stop sending notices; notices not yet delivered are dropped when they are tried."""
    notices.delete_webhook(ctx, caller, team_id)
    return Response(status_code=204)


@router.post("/notification-webhook/rotate-secret")
def rotate_notification_secret(team_id: str, ctx: Ctx, caller: Caller) -> NotificationWebhookPublic:
    """A new signing secret, shown once; notices from now on are signed with it."""
    view = notices.rotate_secret(ctx, caller, team_id)
    return notification_webhook_public(view.webhook, view.secret)


@router.post("/notification-webhook/test", responses=errors(409))
def test_notification_webhook(team_id: str, ctx: Ctx, caller: Caller) -> NotificationPublic:
    """Send a `ping` now; the answer is the notice after its first try."""
    return notification_public(notices.send_test(ctx, caller, team_id))


@router.get("/notifications")
def list_notifications(
    team_id: str, ctx: Ctx, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> NotificationPagePublic:
    """The delivery log, newest first: each notice, its tries and its state."""
    page = notices.list_notices(ctx, caller, team_id, cursor, limit)
    return NotificationPagePublic(
        data=[notification_public(n) for n in page.notices], next_cursor=page.next_cursor
    )
