"""Helpers shared by the benchmarks: scratch databases, seeding, timing, results."""

from __future__ import annotations

import json
import os
import platform
import secrets
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from creditledger.adapters.db.migrate import upgrade
from creditledger.bootstrap import build_context
from creditledger.config import Settings
from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.grants import GrantKind, GrantSource
from creditledger.domain.money import dollars
from creditledger.services.context import Context
from creditledger.services.grants import NewGrant, issue_grant
from creditledger.services.prices import PriceInput, set_price_book
from creditledger.services.tokens import create_platform_token

PG_ADMIN_URL = os.environ.get(
    "CREDITLEDGER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RESULTS = Path(__file__).parent / "results"
MODELS = ("llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen-2.5-72b")


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    """A fresh, migrated database URL that is removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            _migrate(url)
            yield url
        return
    name = f"cl_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    upgrade(engine)
    engine.dispose()


def context(url: str) -> Context:
    return build_context(
        Settings.model_validate(
            {"database_url": url, "password_time_cost": 1, "password_memory_kib": 8}
        )
    )


def seed(ctx: Context, teams: int, credit: str = "1000000.00") -> tuple[list[str], str, str]:
    """A price book, ``teams`` teams each with a promotional and a prepaid grant.

    Returns (team ids, operator token, service token)."""
    operator = create_platform_token(ctx, TokenKind.OPERATOR, "bench operator")
    service = create_platform_token(ctx, TokenKind.SERVICE, "bench gateway")
    system = Principal(TokenKind.OPERATOR, "bench")
    set_price_book(
        ctx,
        system,
        [
            PriceInput("serverless", m, None, meter, price, 1_000_000)
            for m in MODELS
            for meter, price in (("input_tokens", "0.20"), ("output_tokens", "0.60"))
        ],
    )
    ids: list[str] = []
    with ctx.uow() as uow:
        now = ctx.clock.now()
        for n in range(teams):
            team_id = uow.new_id("team")
            uow.teams.add(team_id, f"bench team {n}", now)
            for new in (
                NewGrant(GrantKind.PROMOTIONAL, GrantSource.MANUAL, dollars("5.00"), note="b"),
                NewGrant(GrantKind.PREPAID, GrantSource.PURCHASE, dollars(credit)),
            ):
                issue_grant(uow, ctx, team_id, new, "bench credit")
            ids.append(team_id)
        uow.commit()
    return ids, operator, service


def events(team_ids: list[str], count: int, prefix: str, at: datetime) -> list[dict[str, Any]]:
    stamp = at.isoformat()
    return [
        {
            "id": f"{prefix}-{n:08d}",
            "team_id": team_ids[n % len(team_ids)],
            "product": "serverless",
            "model": MODELS[n % len(MODELS)],
            "timestamp": stamp,
            "quantities": {"input_tokens": 100 + n % 900, "output_tokens": 37 + n % 300},
        }
        for n in range(count)
    ]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "spread_pct": 100 * (max(values) - min(values)) / statistics.median(values)
        if statistics.median(values)
        else 0.0,
    }


def record(name: str, figures: dict[str, Any]) -> Path:
    """Write the figures, with the machine, commit and date, to bench/results/."""
    RESULTS.mkdir(exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    stamp = datetime.now(UTC)
    doc = {
        "benchmark": name,
        "date": stamp.isoformat(timespec="seconds"),
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "figures": figures,
    }
    path = RESULTS / f"{name}-{stamp.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
