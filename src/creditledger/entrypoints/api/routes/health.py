"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from creditledger.entrypoints.api.deps import Ctx
from creditledger.entrypoints.api.errors import error_response
from creditledger.entrypoints.api.schemas import ErrorPublic, StatusPublic
from creditledger.services.health import readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> StatusPublic:
    """The process is up."""
    return StatusPublic(status="ok")


@router.get(
    "/readyz",
    response_model=StatusPublic,
    responses={503: {"model": ErrorPublic, "description": "Not ready (`not_ready`)"}},
)
def readyz(ctx: Ctx) -> StatusPublic | Response:
    """The database answers and its schema is at the newest migration."""
    problem = readiness(ctx)
    if problem is not None:
        return error_response(503, "not_ready", problem)
    return StatusPublic(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        }
    },
)
def metrics() -> Response:
    """Counters and histograms for Prometheus to scrape."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
