"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from creditledger.entrypoints.api.deps import Ctx
from creditledger.entrypoints.api.errors import error_response
from creditledger.services.health import readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(ctx: Ctx) -> dict[str, Any] | Response:
    """The database answers and its schema is at the newest migration."""
    problem = readiness(ctx)
    if problem is not None:
        return error_response(503, "not_ready", problem)
    return {"status": "ready"}


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
