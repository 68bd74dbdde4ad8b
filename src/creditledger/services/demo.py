"""Demo data: a team with credit in every bucket of the consumption order, a month of
usage (the older weeks beyond its credit, so on its invoices), a settled purchase,
auto-recharge settings, and a promo code it has not redeemed yet.

Loading is idempotent: the team, its credit and the promo code are made once. Every
load prints fresh tokens (a personal one by logging in again, and a service token for
the platform's calls), since stored tokens are only hashes and can not be shown again."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta

from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.errors import PromoCodeTaken
from creditledger.domain.grants import GrantKind, GrantSource, Scope
from creditledger.domain.money import dollars
from creditledger.domain.pricing import Price
from creditledger.domain.promo_codes import chosen_code
from creditledger.services.access import system_operator
from creditledger.services.accounts import log_in, sign_up
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.invoices import run_invoices
from creditledger.services.payments import settle_offline_purchase
from creditledger.services.promo_codes import NewPromoCodes, create_promo_codes
from creditledger.services.recharge import set_auto_recharge
from creditledger.services.tokens import create_platform_token
from creditledger.services.usage import ingest_usage

DEMO_EMAIL = "demo@creditledger.local"
DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - printed for the demo login
DEMO_PROMO_CODE = "WELCOME-DEMO"
DEMO_PROMO = NewPromoCodes(
    amount="5.00", max_redemptions=1000, credit_valid_days=30, code=DEMO_PROMO_CODE
)


@dataclass(frozen=True, slots=True)
class Demo:
    email: str
    password: str
    team_id: str
    token: str
    """A new personal token of the demo admin."""
    service_token: str
    """A new service token, for the calls the platform makes (usage, authorize)."""
    promo_code: str
    created: bool


def load_demo(ctx: Context) -> Demo:
    """Create the demo admin, team and promo code once; later calls make new tokens only."""
    with ctx.uow(write=False) as uow:
        existing = uow.users.find_by_email(DEMO_EMAIL)
    if existing is not None:
        token = log_in(ctx, DEMO_EMAIL, DEMO_PASSWORD)
        with ctx.uow(write=False) as uow:
            team_id = uow.members.teams_of(existing[0])[0]
        created = False
    else:
        team_id, token = _demo_team(ctx)
        created = True
    _demo_promo_code(ctx)
    service_token = create_platform_token(ctx, TokenKind.SERVICE, "demo platform")
    return Demo(DEMO_EMAIL, DEMO_PASSWORD, team_id, token, service_token, DEMO_PROMO_CODE, created)


def _demo_promo_code(ctx: Context) -> None:
    """The code the README redeems, made unless it exists (also on older demo data)."""
    normal, _ = chosen_code(DEMO_PROMO_CODE)
    with ctx.uow(write=False) as uow:
        if uow.promo_codes.find(normal) is not None:
            return
    with contextlib.suppress(PromoCodeTaken):  # a concurrent `demo` made it first
        create_promo_codes(ctx, system_operator("demo"), DEMO_PROMO)


def _demo_team(ctx: Context) -> tuple[str, str]:
    """The demo admin and team with its credit, prices and usage: (team id, token)."""
    done = sign_up(ctx, DEMO_EMAIL, DEMO_PASSWORD, "Demo Team")
    now = ctx.clock.now()
    # The operator grants date from before the week of demo usage, so they pay for it.
    week_ago = now - timedelta(days=8)
    llama = Scope(products=frozenset({"serverless"}), models=frozenset({"llama-3.1-70b"}))
    gpus = Scope(products=frozenset({"dedicated"}), gpus=frozenset({"h100"}))
    grants = [
        (
            NewGrant(
                GrantKind.PROMOTIONAL,
                GrantSource.MANUAL,
                dollars("5.00"),
                llama,
                effective_at=week_ago,
                expires_at=now + timedelta(days=14),
                note="Llama launch credit",
            ),
            "Operator grant: Llama launch credit",
        ),
        (
            NewGrant(
                GrantKind.PROMOTIONAL,
                GrantSource.MANUAL,
                dollars("25.00"),
                gpus,
                effective_at=week_ago,
                note="H100 research credit",
            ),
            "Operator grant: H100 research credit",
        ),
        (
            NewGrant(
                GrantKind.PROMOTIONAL,
                GrantSource.MANUAL,
                dollars("2.00"),
                effective_at=week_ago,
                note="Thanks for the bug report",
            ),
            "Operator grant: Thanks for the bug report",
        ),
    ]
    with ctx.uow() as uow:
        uow.teams.lock(done.team.id)
        for new, description in grants:
            issue_grant(uow, ctx, done.team.id, new, description)
        uow.commit()
    settle_offline_purchase(ctx, done.team.id, dollars("20.00"), "pi_demo")
    with ctx.uow() as uow:
        if not uow.pricing.books():
            uow.pricing.add_book(DEMO_PRICES, now - timedelta(days=30), now)
        uow.commit()
    _demo_usage(ctx, done.team.id)
    _demo_older_usage(ctx, done.team.id)
    run_invoices(ctx)
    admin = Principal(TokenKind.PERSONAL, "demo", done.user_id)
    set_auto_recharge(ctx, admin, done.team.id, False, "5.00", "25.00")
    return done.team.id, done.token


_TOKEN_PRICES = (
    ("llama-3.1-8b", "0.05", "0.10"),
    ("llama-3.1-70b", "0.20", "0.60"),
    ("mixtral-8x7b", "0.15", "0.45"),
)
DEMO_PRICES = (
    *(
        Price("serverless", model, None, meter, dollars(price), 1_000_000)
        for model, price_in, price_out in _TOKEN_PRICES
        for meter, price in (("input_tokens", price_in), ("output_tokens", price_out))
    ),
    Price("dedicated", None, "h100", "gpu_seconds", dollars("2.50"), 3600),
)


def _demo_usage(ctx: Context, team_id: str) -> None:
    """A week of made-up traffic, so the usage report and history have something in them."""
    now = ctx.clock.now()
    events = []
    for hour in range(24 * 7):
        at = (now - timedelta(hours=hour)).isoformat()
        model = ("llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b")[hour % 3]
        events.append(
            {
                "id": f"demo-{hour}",
                "team_id": team_id,
                "product": "serverless",
                "model": model,
                "timestamp": at,
                "quantities": {
                    "input_tokens": 20_000 + 1_000 * (hour % 17),
                    "output_tokens": 5_000 + 300 * (hour % 11),
                },
            }
        )
    events.append(
        {
            "id": "demo-gpu",
            "team_id": team_id,
            "product": "dedicated",
            "model": "llama-3.1-70b",
            "gpu": "h100",
            "timestamp": (now - timedelta(hours=3)).isoformat(),
            "quantities": {"gpu_seconds": 1_800},
        }
    )
    ingest_usage(ctx, Principal(TokenKind.SERVICE, "demo"), events)


def _demo_older_usage(ctx: Context, team_id: str) -> None:
    """Three more weeks before the credit began: usage beyond credit, on the unpaid
    balance and the invoice of each month that has closed since."""
    now = ctx.clock.now()
    events = []
    for day in range(9, 30):
        at = now - timedelta(days=day)
        events.append(
            {
                "id": f"demo-old-{day}",
                "team_id": team_id,
                "product": "serverless",
                "model": ("llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b")[day % 3],
                "timestamp": at.isoformat(),
                "quantities": {
                    "input_tokens": 400_000 + 20_000 * (day % 7),
                    "output_tokens": 120_000 + 9_000 * (day % 5),
                },
            }
        )
        if day % 4 == 0:
            events.append(
                {
                    "id": f"demo-old-gpu-{day}",
                    "team_id": team_id,
                    "product": "dedicated",
                    "model": "llama-3.1-70b",
                    "gpu": "h100",
                    "timestamp": (at - timedelta(hours=2)).isoformat(),
                    "quantities": {"gpu_seconds": 900},
                }
            )
    ingest_usage(ctx, Principal(TokenKind.SERVICE, "demo"), events)
