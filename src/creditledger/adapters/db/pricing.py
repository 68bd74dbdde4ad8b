"""Price book versions and team pricing."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from creditledger.adapters.db import bulk
from creditledger.adapters.db import tables as t
from creditledger.adapters.db.types import from_micros
from creditledger.domain.pricing import Price, PriceBook, TeamPricing


def _price_to_json(p: Price) -> dict[str, Any]:
    return {
        "product": p.product,
        "model": p.model,
        "gpu": p.gpu,
        "meter": p.meter,
        "unit_price": p.unit_price,
        "per_units": p.per_units,
    }


def _price_from_json(raw: dict[str, Any]) -> Price:
    return Price(
        raw["product"], raw["model"], raw["gpu"], raw["meter"], raw["unit_price"], raw["per_units"]
    )


PRICING_OF_TEAMS = (
    "SELECT id, team_id, effective_from, discount_bp, prices FROM team_pricing WHERE 1 = 1"
)
"""Pricing versions by ``team_id``: the rows of :func:`pricing_by_team`."""


def pricing_by_team(rows: Sequence[Sequence[Any]]) -> dict[str, list[TeamPricing]]:
    """Each team's pricing versions, oldest first."""
    out: dict[str, list[TeamPricing]] = defaultdict(list)
    for _, team_id, effective_from, discount_bp, stored in sorted(rows, key=lambda r: r[0]):
        # SQLite hands JSON back as text
        raw = json.loads(stored) if isinstance(stored, str) else stored
        prices = tuple(_price_from_json(p) for p in (raw or []))
        out[team_id].append(TeamPricing(from_micros(effective_from), discount_bp, prices))
    return out


class SqlPricing:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def books(self) -> list[PriceBook]:
        """Every version of the price book, oldest first."""
        versions = self.conn.execute(
            sa.select(t.price_books.c.id, t.price_books.c.effective_from).order_by(
                t.price_books.c.id
            )
        ).all()
        by_book: dict[int, list[Price]] = defaultdict(list)
        for r in self.conn.execute(sa.select(t.prices)):
            by_book[r.book_id].append(
                Price(r.product, r.model, r.gpu, r.meter, r.unit_price_nanos, r.per_units)
            )
        return [PriceBook(v.effective_from, tuple(by_book[v.id])) for v in versions]

    def latest_book_id(self) -> int:
        value = self.conn.execute(sa.select(sa.func.max(t.price_books.c.id))).scalar()
        return int(value or 0)

    def add_book(self, prices: Sequence[Price], effective_from: datetime, at: datetime) -> None:
        book_id = self.conn.execute(
            t.price_books.insert()
            .values(effective_from=effective_from, created_at=at)
            .returning(t.price_books.c.id)
        ).scalar_one()
        if prices:
            self.conn.execute(
                t.prices.insert(),
                [
                    {
                        "book_id": book_id,
                        "product": p.product,
                        "model": p.model,
                        "gpu": p.gpu,
                        "meter": p.meter,
                        "unit_price_nanos": p.unit_price,
                        "per_units": p.per_units,
                    }
                    for p in prices
                ],
            )

    def for_teams(self, team_ids: Sequence[str]) -> dict[str, list[TeamPricing]]:
        return self.for_teams_later(team_ids)()

    def for_teams_later(
        self, team_ids: Sequence[str]
    ) -> Callable[[], dict[str, list[TeamPricing]]]:
        """Read on the driver connection, one array parameter: on the ingestion hot path."""
        later = bulk.select_in(self.conn, PRICING_OF_TEAMS, (), "team_id", sorted(set(team_ids)))
        return lambda: pricing_by_team(later())

    def for_all_teams(self) -> dict[str, list[TeamPricing]]:
        """Every team's pricing versions, oldest first (operators set few of them)."""
        out: dict[str, list[TeamPricing]] = defaultdict(list)
        for r in self.conn.execute(sa.select(t.team_pricing).order_by(t.team_pricing.c.id)):
            prices = tuple(_price_from_json(p) for p in (r.prices or []))
            out[r.team_id].append(TeamPricing(r.effective_from, r.discount_bp, prices))
        return dict(out)

    def add_team_pricing(self, team_id: str, pricing: TeamPricing, at: datetime) -> None:
        """Also bumps the team's revision: custom prices decide what may be authorized."""
        self.conn.execute(
            t.team_pricing.insert().values(
                team_id=team_id,
                effective_from=pricing.effective_from,
                discount_bp=pricing.discount_bp,
                prices=[_price_to_json(p) for p in pricing.prices] or None,
                created_at=at,
            )
        )
        self.conn.execute(
            t.teams.update().where(t.teams.c.id == team_id).values(revision=t.teams.c.revision + 1)
        )
