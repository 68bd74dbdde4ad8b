"""The ASGI application factory that ``uvicorn`` (and ``creditledger serve``) load."""

from __future__ import annotations

from fastapi import FastAPI

from creditledger.bootstrap import build_context
from creditledger.entrypoints.api.app import create_app


def app_factory() -> FastAPI:
    ctx = build_context()
    return create_app(ctx, run_jobs=ctx.settings.run_jobs_in_process)
