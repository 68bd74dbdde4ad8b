"""GET /v1/teams/{id}/usage: cost per hour or day, by product or model."""

from __future__ import annotations

from datetime import datetime, timedelta

from creditledger.domain.accounts import Principal
from creditledger.domain.audit import AuditAction
from creditledger.domain.errors import InvalidRequest
from creditledger.domain.periods import check_period
from creditledger.domain.usage_report import UsageRow
from creditledger.services import audit
from creditledger.services.access import Need, check_team_access
from creditledger.services.context import Context

BUCKETS = {"hour": 3_600_000_000, "day": 86_400_000_000}
MAX_BUCKETS = 24 * 31


def usage_report(
    ctx: Context,
    principal: Principal,
    team_id: str,
    since: datetime | None,
    until: datetime | None,
    granularity: str,
    group_by: str,
) -> list[UsageRow]:
    bucket = BUCKETS[granularity]
    # By default, up to the end of the current period, so it is included.
    until = until or ctx.clock.now() + timedelta(microseconds=bucket)
    since = since or until - timedelta(days=30 if granularity == "day" else 1)
    check_period(since, until)
    if (until - since) / timedelta(microseconds=bucket) > MAX_BUCKETS:
        raise InvalidRequest(
            f"At most {MAX_BUCKETS} periods at a time; narrow `since`–`until` or use days.",
            param="since",
        )
    with ctx.uow(write=False) as uow:
        check_team_access(uow, principal, team_id, Need.BILLING_READ)
        rows = uow.usage.report(team_id, since, until, bucket, group_by == "model")
    audit.record_read(
        ctx,
        principal,
        AuditAction.USAGE_READ,
        team_id,
        {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "granularity": granularity,
            "group_by": group_by,
        },
    )
    return rows
