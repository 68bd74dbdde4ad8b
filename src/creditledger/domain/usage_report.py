"""Rows of the usage report: cost per period and product (or model), split by who paid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from creditledger.domain.money import Nanos


@dataclass(frozen=True, slots=True)
class UsageRow:
    start: datetime
    product: str
    model: str | None
    cost: Nanos
    covered_by_credits: Nanos
    unpaid: Nanos


SPEND_CHART_DAYS = 30


def last_days(now: datetime, days: int = SPEND_CHART_DAYS) -> list[datetime]:
    """The starts (UTC midnight) of the ``days`` calendar days ending with today's."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return [today - timedelta(days=back) for back in range(days - 1, -1, -1)]


@dataclass(frozen=True, slots=True)
class DaySpend:
    """One day of the spend chart: cost per product (or model) and who paid it."""

    start: datetime
    by_group: dict[str, Nanos]
    covered_by_credits: Nanos
    unpaid: Nanos

    @property
    def total(self) -> Nanos:
        return self.covered_by_credits + self.unpaid


def daily_spend(rows: list[UsageRow], days: list[datetime], by_model: bool) -> list[DaySpend]:
    """Every day of ``days`` (empty ones too), from report rows bucketed by day."""
    found: dict[datetime, list[UsageRow]] = {}
    for row in rows:
        found.setdefault(row.start, []).append(row)
    spend = []
    for day in days:
        groups: dict[str, Nanos] = {}
        covered = unpaid = 0
        for row in found.get(day, []):
            name = (row.model or "(no model)") if by_model else row.product
            groups[name] = groups.get(name, 0) + row.cost
            covered += row.covered_by_credits
            unpaid += row.unpaid
        spend.append(DaySpend(day, groups, covered, unpaid))
    return spend
