"""Rows of the usage report: cost per period and product (or model), split by who paid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.money import Nanos


@dataclass(frozen=True, slots=True)
class UsageRow:
    start: datetime
    product: str
    model: str | None
    cost: Nanos
    covered_by_credits: Nanos
    unpaid: Nanos
