"""Payment provider webhooks: the raw body is what the signature covers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from creditledger.entrypoints.api.deps import Ctx
from creditledger.services.payments import handle_webhook

router = APIRouter(prefix="/v1/webhooks", tags=["payment providers"])


@router.post("/{provider}")
async def receive_webhook(provider: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """`provider` is `sandbox` or `stripe` (the one configured; any other: 404).

    Signature-checked on the raw body: 400 `invalid_signature` when it is bad or stale;
    200 for an event delivered again or of a type not acted on; 503 for a refund or
    dispute of a payment not seen yet (deliver it again later)."""
    body = await request.body()
    headers = {name.lower(): value for name, value in request.headers.items()}
    applied = await run_in_threadpool(handle_webhook, ctx, provider, body, headers)
    return {"received": True, "result": applied.value}
