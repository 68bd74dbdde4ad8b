"""`creditledger verify`: rebuild balances from postings and check the invariants."""

from __future__ import annotations

from creditledger.services.context import Context


def verify_ledger(ctx: Context) -> list[str]:
    """Every violation found, as sentences; an empty list means the ledger is sound."""
    return list(ctx.invariants.violations())
