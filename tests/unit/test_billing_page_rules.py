"""The small rules behind the Billing page: money for people, expiry warnings, the 30
days of the spend chart, its scale, CSRF tokens and where ``next`` may lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from pydantic import ValidationError

from creditledger.config import Settings
from creditledger.domain.errors import FormExpired, InvalidRequest
from creditledger.domain.grants import Grant, GrantKind, GrantSource
from creditledger.domain.money import display_amount, dollars, typed_amount
from creditledger.domain.periods import day_range
from creditledger.domain.purchases import purchase_presets
from creditledger.domain.sessions import WebSession, session_expiry
from creditledger.domain.tiers import DEFAULT_TIERS, next_level_at, next_tier
from creditledger.domain.usage_report import UsageRow, daily_spend, last_days
from creditledger.entrypoints.web.chart import nice_step, spend_chart
from creditledger.entrypoints.web.security import check_csrf, csrf_token, local_path

NOW = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("nanos", "shown"),
    [
        (0, "$0.00"),
        (dollars("10"), "$10.00"),
        (dollars("1234567.5"), "$1,234,567.50"),
        (7_400, "$0.0000074"),
        (-dollars("1.5"), "-$1.50"),
        (dollars("32.706975"), "$32.706975"),
    ],
)
def test_display_amount_is_exact_with_a_sign_and_separators(nanos: int, shown: str) -> None:
    assert display_amount(nanos) == shown


def grant(expires_at: datetime | None, remaining: int = 5, voided: bool = False) -> Grant:
    return Grant(
        id="grant_x",
        team_id="team_x",
        kind=GrantKind.PROMOTIONAL,
        source=GrantSource.PROMO_CODE,
        amount=10,
        remaining=remaining,
        scope=None,
        effective_at=NOW - timedelta(days=1),
        expires_at=expires_at,
        voided_at=NOW if voided else None,
        created_at=NOW - timedelta(days=1),
    )


@pytest.mark.parametrize(
    ("left", "days"),
    [
        (timedelta(minutes=5), 1),
        (timedelta(days=1), 1),
        (timedelta(days=1, seconds=1), 2),
        (timedelta(days=6, hours=23), 7),
        (timedelta(days=7), None),
        (timedelta(days=30), None),
    ],
)
def test_a_grant_warns_in_its_last_week(left: timedelta, days: int | None) -> None:
    assert grant(NOW + left).expires_soon_in_days(NOW) == days


def test_no_warning_for_what_can_not_be_used_anyway() -> None:
    soon = NOW + timedelta(days=2)
    assert grant(None).expires_soon_in_days(NOW) is None
    assert grant(soon, remaining=0).expires_soon_in_days(NOW) is None
    assert grant(soon, voided=True).expires_soon_in_days(NOW) is None
    assert grant(NOW - timedelta(seconds=1)).expires_soon_in_days(NOW) is None


def test_the_chart_covers_thirty_calendar_days_ending_today() -> None:
    days = last_days(NOW)
    assert len(days) == 30
    assert days[-1] == datetime(2026, 12, 3, tzinfo=UTC)
    assert days[0] == datetime(2026, 11, 4, tzinfo=UTC)
    assert all(b - a == timedelta(days=1) for a, b in pairwise(days))


def test_daily_spend_fills_empty_days_and_groups_by_product_or_model() -> None:
    days = last_days(NOW)
    rows = [
        UsageRow(days[-1], "serverless", "llama", 300, 200, 100),
        UsageRow(days[-1], "serverless", "mixtral", 50, 50, 0),
        UsageRow(days[-1], "dedicated", None, 1000, 0, 1000),
    ]
    by_product = daily_spend(rows, days, by_model=False)
    assert len(by_product) == 30
    assert by_product[0].by_group == {} and by_product[0].total == 0
    today = by_product[-1]
    assert today.by_group == {"serverless": 350, "dedicated": 1000}
    assert (today.covered_by_credits, today.unpaid, today.total) == (250, 1100, 1350)
    by_model = daily_spend(rows, days, by_model=True)[-1]
    assert by_model.by_group == {"llama": 300, "mixtral": 50, "(no model)": 1000}


@pytest.mark.parametrize(
    ("top", "step"), [(1, 1), (4, 1), (5, 2), (9, 5), (21, 10), (4_000, 1_000), (4_001, 2_000)]
)
def test_the_scale_steps_are_one_two_or_five_times_a_power_of_ten(top: int, step: int) -> None:
    assert nice_step(top) == step
    assert step * 4 >= top


def test_the_chart_draws_every_day_and_hatches_the_unpaid_part() -> None:
    days = last_days(NOW)
    rows = [UsageRow(days[-1], "serverless", "llama", dollars("2"), dollars("1.5"), dollars("0.5"))]
    chart = spend_chart(daily_spend(rows, days, by_model=False))
    assert len(chart.bars) == 30
    today = chart.bars[-1]
    assert [r.css for r in today.rects] == ["series-0", "unpaid"]
    spent, unpaid = today.rects
    assert unpaid.height == pytest.approx(spent.height / 4)
    assert unpaid.y == pytest.approx(spent.y)  # on top of the bar
    assert today.label == "2026-12-03: $2.00 spent, $1.50 covered by credits, $0.50 unpaid"
    assert (chart.total, chart.covered, chart.unpaid) == ("$2.00", "$1.50", "$0.50")
    assert chart.x_labels[-1][1] == "Dec 3"
    assert not chart.empty
    assert spend_chart(daily_spend([], days, by_model=False)).empty


def test_many_groups_share_the_last_colour_as_other() -> None:
    days = last_days(NOW)
    rows = [UsageRow(days[-1], f"p{i}", None, 10 + i, 10 + i, 0) for i in range(9)]
    chart = spend_chart(daily_spend(rows, days, by_model=False))
    assert [item.name for item in chart.legend][-1] == "Other"
    assert len(chart.legend) == 6


def test_the_next_tier_and_where_it_starts() -> None:
    first, second = DEFAULT_TIERS[0], DEFAULT_TIERS[1]
    assert next_tier(first) == second
    assert next_level_at(first) == second.reached_at
    top = max((t for t in DEFAULT_TIERS if t.reached_at is not None), key=lambda t: t.level)
    assert next_tier(top) is None


def test_a_session_ends_at_its_lifetime_or_when_revoked() -> None:
    ends = session_expiry(NOW, timedelta(hours=12))
    live = WebSession("ses_x", "user_x", NOW, ends)
    assert live.is_live_at(ends - timedelta(microseconds=1))
    assert not live.is_live_at(ends)
    assert not WebSession("ses_x", "user_x", NOW, ends, revoked_at=NOW).is_live_at(NOW)


def test_a_csrf_token_belongs_to_one_secret() -> None:
    token = csrf_token("secret-a")
    check_csrf("secret-a", token)
    for secret, sent in (
        ("secret-b", token),
        ("secret-a", token.upper()),
        ("secret-a", ""),
        ("secret-a", None),
        ("secret-a", "é" * 64),
        (None, token),
        ("", token),
    ):
        with pytest.raises(FormExpired):
            check_csrf(secret, sent)


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/teams/team_1/settings/billing", True),
        ("/teams/team_1/settings/billing?cursor=abc#credit-history", True),
        ("https://evil.example/", False),
        ("//evil.example", False),
        ("/\\evil.example", False),
        ("javascript:alert(1)", False),
        ("/\x00", False),
        ("/é", False),
        ("", False),
        (None, False),
        ("/" + "a" * 600, False),
    ],
)
def test_next_is_only_ever_a_path_here(target: str | None, kept: bool) -> None:
    assert local_path(target) == (target if kept else "/")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("sales@example.com", True),
        ("https://example.com/contact", True),
        ("javascript:alert(1)", False),
        ("http://example.com", False),
        ('sales@example.com"><script>', False),
        ("not an address", False),
    ],
)
def test_the_sales_contact_is_an_address_or_an_https_url(value: str, ok: bool) -> None:
    if ok:
        assert Settings(sales_contact=value).sales_contact == value
    else:
        with pytest.raises(ValidationError):
            Settings(sales_contact=value)


def test_a_day_range_runs_from_the_first_days_start_to_the_last_days_end() -> None:
    assert day_range("2026-11-01", "2026-11-30") == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert day_range(None, "2026-11-30") == (None, datetime(2026, 12, 1, tzinfo=UTC))
    assert day_range("", None) == (None, None)
    assert day_range("2026-11-30", "2026-11-30")[1] == datetime(2026, 12, 1, tzinfo=UTC)
    for since, until in (
        ("2026-12-01", "2026-11-30"),
        ("yesterday", None),
        (None, "9999-12-31"),
        (None, "2026-02-30"),
    ):
        with pytest.raises(InvalidRequest):
            day_range(since, until)


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        (" 25 ", "25"),
        ("$10.00", "10.00"),
        ("$ 1,250.50", "1250.50"),
        ("1,250", "1250"),
        ("$$10", "$10"),  # left for parse_amount to refuse
        ("1,2,3", "1,2,3"),
        ("-5", "-5"),
    ],
)
def test_typed_amounts_lose_only_what_people_add(typed: str, read: str) -> None:
    assert typed_amount(typed) == read


def test_purchase_presets_start_at_the_minimum() -> None:
    ten, max_ = dollars("10"), dollars("10000")
    assert purchase_presets(ten, max_) == tuple(dollars(d) for d in ("10", "25", "50", "100"))
    assert purchase_presets(dollars("20"), max_) == tuple(
        dollars(d) for d in ("20", "25", "50", "100")
    )
    assert purchase_presets(dollars("500"), max_) == (dollars("500"),)
