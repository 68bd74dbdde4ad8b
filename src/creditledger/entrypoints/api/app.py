"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import cast

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.types import Receive, Scope, Send

from creditledger.bootstrap import change_counter, change_feed
from creditledger.entrypoints.api import errors, metrics
from creditledger.entrypoints.api.fast_authorize import AuthorizeFastPath
from creditledger.entrypoints.api.fast_history import HistoryFastPath
from creditledger.entrypoints.api.fast_usage import UsageFastPath
from creditledger.entrypoints.api.group_commit import GroupCommit
from creditledger.entrypoints.api.limits import BodyGuard
from creditledger.entrypoints.api.openapi import document_errors
from creditledger.entrypoints.api.responses import Json
from creditledger.entrypoints.api.routes import (
    accounts,
    audit,
    billing,
    grants,
    health,
    invoices,
    notices,
    prices,
    promo_codes,
    purchases,
    sandbox,
    usage,
    webhooks,
)
from creditledger.entrypoints.jobs import JobRunner
from creditledger.entrypoints.web import routes as web
from creditledger.services.authorize import Authorizer
from creditledger.services.context import Context

DESCRIPTION = """Credits and billing for an AI inference platform.

Money is a decimal string in US dollars (`"10.00"`); times are RFC 3339 with a zone.
Errors have the shape `{"error": {"code", "message", "param"}}`.
"""


def create_app(ctx: Context, *, run_jobs: bool = False) -> FastAPI:
    """The API over ``ctx``. ``run_jobs`` runs the periodic jobs in this process."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner = JobRunner(ctx) if run_jobs else None
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()
            app.state.authorizer.close()
            app.state.usage_groups.close()
            ctx.uow.dispose()

    # The API reference at /docs is served from files in the package: no CDN.
    app = FastAPIOffline(
        lifespan=lifespan,
        title="creditledger",
        version="1",
        description=DESCRIPTION,
        default_response_class=Json,
        docs_url="/docs",
        redoc_url=None,
        static_url="/docs/static",
    )
    app.state.ctx = ctx
    app.state.authorizer = Authorizer(ctx, change_feed(ctx.settings), change_counter(ctx.settings))
    app.state.usage_groups = GroupCommit(ctx, app.state.authorizer)
    errors.install(app)
    app.add_middleware(metrics.Metrics)
    app.add_middleware(BodyGuard)
    for module in (
        accounts,
        billing,
        grants,
        health,
        prices,
        usage,
        purchases,
        invoices,
        webhooks,
        sandbox,
        promo_codes,
        audit,
        notices,
    ):
        document_errors(module.router)
        app.include_router(module.router)
    # The pages for people (sign-in, Billing): not part of the API's document.
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.HERE / "static"), name="static")
    # POST /v1/authorize, asked before every inference request, the small usage POSTs
    # that follow them and the plain requests of the credit history page are answered in
    # front of the framework (its own entry, routing, middleware, validation), which gets
    # the rest.
    framework = partial(FastAPI.__call__, app)
    history_page = HistoryFastPath(framework, ctx, app.state.authorizer)
    usage_posts = UsageFastPath(history_page, ctx, app.state.usage_groups)
    front = AuthorizeFastPath(usage_posts, app.state.authorizer)
    app.__class__ = _Fronted
    cast(_Fronted, app).front = front
    return app


class _Fronted(FastAPI):
    """The application with ``AuthorizeFastPath`` (then ``UsageFastPath`` and
    ``HistoryFastPath``) as its entry. ``FastAPIOffline`` makes a plain ``FastAPI``;
    this subclass only changes where a request enters."""

    front: AuthorizeFastPath

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)
