"""The spend chart as plain SVG shapes: a stacked bar per day, drawn on the server.

Bars are stacked by product (or model); the part of a day's spend that credits did
not cover is drawn hatched on top. Heights are pixels, scaled from integer nanos;
every figure shown in words is written by ``domain.money.display_amount``.
"""

from __future__ import annotations

from dataclasses import dataclass

from creditledger.domain.money import Nanos, display_amount
from creditledger.domain.usage_report import DaySpend

WIDTH = 720
HEIGHT = 260
LEFT = 72
RIGHT = 8
TOP = 12
BOTTOM = 32
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
COLOURS = 6
"""Distinct series colours (``series-0`` … ``series-5`` in the stylesheet); more
groups than that are drawn together as "Other"."""
OTHER = "Other"


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str


@dataclass(frozen=True, slots=True)
class Bar:
    date: str
    label: str
    """The day's figures in words, for the bar's title and the table."""
    total: str
    covered: str
    unpaid: str
    rects: list[Rect]


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class Legend:
    name: str
    css: str
    total: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    x_labels: list[tuple[float, str]]
    legend: list[Legend]
    total: str
    covered: str
    unpaid: str
    empty: bool


def nice_step(top: Nanos, steps: int = 4) -> Nanos:
    """The smallest 1, 2 or 5 × 10ⁿ nanos that covers ``top`` in ``steps`` steps."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor * steps >= top:
                return step * factor
        step *= 10


def spend_chart(days: list[DaySpend]) -> Chart:
    totals: dict[str, Nanos] = {}
    for d in days:
        for name, cost in d.by_group.items():
            totals[name] = totals.get(name, 0) + cost
    ranked = sorted(totals, key=lambda name: (-totals[name], name))
    shown = ranked if len(ranked) <= COLOURS else ranked[: COLOURS - 1]
    css = {name: f"series-{i}" for i, name in enumerate(shown)}
    legend = [Legend(name, css[name], display_amount(totals[name])) for name in shown]
    if len(shown) < len(ranked):
        rest = sum(totals[name] for name in ranked[len(shown) :])
        legend.append(Legend(OTHER, f"series-{COLOURS - 1}", display_amount(rest)))

    top = max((d.total for d in days), default=0)
    step = nice_step(top) if top > 0 else 1
    scale_top = step * 4
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    bar_width = slot * 0.7

    def height_of(nanos: Nanos) -> float:
        return PLOT_HEIGHT * nanos / scale_top

    bars = []
    for i, d in enumerate(days):
        x = LEFT + i * slot + (slot - bar_width) / 2
        y = float(TOP + PLOT_HEIGHT)
        rects = []
        grouped: dict[str, Nanos] = {}
        for name, cost in d.by_group.items():
            key = name if name in css else OTHER
            grouped[key] = grouped.get(key, 0) + cost
        for name in [*shown, OTHER]:
            cost = grouped.get(name, 0)
            if cost <= 0:
                continue
            h = height_of(cost)
            y -= h
            rects.append(Rect(x, y, bar_width, h, css.get(name, f"series-{COLOURS - 1}")))
        if d.unpaid > 0:
            h = height_of(d.unpaid)
            top_y = TOP + PLOT_HEIGHT - height_of(d.total)
            rects.append(Rect(x, top_y, bar_width, h, "unpaid"))
        date = d.start.date().isoformat()
        label = (
            f"{date}: {display_amount(d.total)} spent, {display_amount(d.covered_by_credits)} "
            f"covered by credits, {display_amount(d.unpaid)} unpaid"
        )
        bars.append(
            Bar(
                date,
                label,
                display_amount(d.total),
                display_amount(d.covered_by_credits),
                display_amount(d.unpaid),
                rects,
            )
        )
    ticks = [
        Tick(TOP + PLOT_HEIGHT - PLOT_HEIGHT * n / 4, display_amount(step * n)) for n in range(5)
    ]
    x_labels = [
        (LEFT + i * slot + slot / 2, f"{d.start:%b} {d.start.day}")
        for i, d in enumerate(days)
        if (len(days) - 1 - i) % 7 == 0  # weekly, counted back from today
    ]
    return Chart(
        WIDTH,
        HEIGHT,
        bars,
        ticks,
        x_labels,
        legend,
        display_amount(sum(d.total for d in days)),
        display_amount(sum(d.covered_by_credits for d in days)),
        display_amount(sum(d.unpaid for d in days)),
        empty=top == 0,
    )
