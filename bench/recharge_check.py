"""How much auto-recharge adds to each usage charge when no recharge is due.

Usage code calls ``recharge_if_needed(ctx, team_id)`` after charging a team; when
nothing is due that must be one cheap read. This measures it on SQLite (a fresh
file) for a team with auto-recharge on and credit above its threshold, and prints
the median and p99 in microseconds (results kept in ``bench/results/``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from creditledger.adapters.db.engine import create_engine
from creditledger.adapters.db.migrate import upgrade
from creditledger.bootstrap import build_context
from creditledger.config import Settings
from creditledger.domain.money import dollars
from creditledger.domain.payments import PaymentOutcome, PaymentPurpose, PaymentStatus
from creditledger.domain.purchases import Purchase
from creditledger.domain.recharge import AutoRecharge
from creditledger.services.accounts import sign_up
from creditledger.services.context import Context
from creditledger.services.payments import apply_outcome
from creditledger.services.recharge import recharge_if_needed

CALLS = 2000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        ctx = build_context(Settings(database_url=url, password_time_cost=1, password_memory_kib=8))
        team = sign_up(ctx, "bench@example.com", "bench-password", "Bench").team.id
        with ctx.uow() as uow:
            purchase = Purchase(
                id="pur_bench",
                team_id=team,
                amount=dollars("100.00"),
                status=PaymentStatus.PENDING,
                created_at=ctx.clock.now(),
            )
            uow.payments.add_purchase(purchase, ctx.payments.name)
            uow.commit()
        apply_outcome(
            ctx,
            PaymentOutcome(
                PaymentStatus.SUCCEEDED,
                "pi_bench",
                PaymentPurpose.PURCHASE,
                "pur_bench",
                dollars("100.00"),
                customer_ref="cus_bench",
                payment_method_ref="pm_sb_4242_x",
            ),
        )
        with ctx.uow() as uow:
            settings = AutoRecharge(True, dollars("10.00"), dollars("50.00"))
            uow.recharges.save_settings(team, settings, ctx.clock.now())
            uow.commit()
        on = _measure(ctx, team)
        with ctx.uow() as uow:
            uow.recharges.save_settings(team, replace(settings, enabled=False), ctx.clock.now())
            uow.commit()
        off = _measure(ctx, team)
        ctx.uow.dispose()
    for label, timings in (("on, credit above threshold", on), ("off", off)):
        median = statistics.median(timings)
        p99 = timings[int(len(timings) * 0.99)]
        print(
            f"recharge_if_needed, SQLite, auto-recharge {label}: "
            f"median {median:.0f} µs, p99 {p99:.0f} µs ({CALLS} calls)"
        )


def _measure(ctx: Context, team: str) -> list[float]:
    timings = []
    for _ in range(CALLS):
        started = time.perf_counter()
        assert recharge_if_needed(ctx, team) is False
        timings.append((time.perf_counter() - started) * 1e6)
    return sorted(timings)


if __name__ == "__main__":
    main()
