"""Readiness: the database answers and its schema is current."""

from __future__ import annotations

from creditledger.services.context import Context


def readiness(ctx: Context) -> str | None:
    """None when ready, else a sentence saying what is wrong."""
    return ctx.schema.problem()
