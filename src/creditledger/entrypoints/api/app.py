"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from creditledger.entrypoints.api import errors, metrics
from creditledger.entrypoints.api.limits import BodyGuard
from creditledger.entrypoints.api.responses import Json
from creditledger.entrypoints.api.routes import (
    accounts,
    billing,
    grants,
    health,
    purchases,
    sandbox,
    webhooks,
)
from creditledger.services.context import Context

DESCRIPTION = """Credits and billing for an AI inference platform.

Money is a decimal string in US dollars (`"10.00"`); times are RFC 3339 with a zone.
Errors have the shape `{"error": {"code", "message", "param"}}`.
"""


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(
        title="creditledger",
        version="1",
        description=DESCRIPTION,
        default_response_class=Json,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    errors.install(app)
    app.middleware("http")(metrics.record)
    app.add_middleware(BodyGuard)
    for module in (accounts, billing, grants, health, purchases, webhooks, sandbox):
        app.include_router(module.router)
    return app
