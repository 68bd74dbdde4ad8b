"""The ASGI application factory that ``uvicorn`` (and ``creditledger serve``) load."""

from __future__ import annotations

from fastapi import FastAPI

from creditledger.bootstrap import build_context
from creditledger.entrypoints.api.app import create_app


def app_factory() -> FastAPI:
    return create_app(build_context())
