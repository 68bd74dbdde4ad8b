"""Payment provider webhooks: the raw body is what the signature covers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from creditledger.entrypoints.api.deps import Ctx
from creditledger.entrypoints.api.openapi import errors
from creditledger.entrypoints.api.schemas import WebhookReceived
from creditledger.services.payments import handle_webhook

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["payment providers"],
    responses=errors(404),
)


async def _receive(provider: str, request: Request, ctx: Ctx) -> WebhookReceived:
    body = await request.body()
    headers = {name.lower(): value for name, value in request.headers.items()}
    applied = await run_in_threadpool(handle_webhook, ctx, provider, body, headers)
    return WebhookReceived(received=True, result=applied.value)


@router.post("/stripe")
async def stripe_webhook(request: Request, ctx: Ctx) -> WebhookReceived:
    """Stripe's events, checked with `Stripe-Signature` on the raw body (404 unless the
    provider is `stripe`). 400 `invalid_signature` when bad or stale; 200 for an event
    delivered again (`duplicate`), of a type not acted on (`ignored`), or refused
    (`refused`: a payment for another amount, currency or purchase than was bought, or
    for nothing of ours: nothing is granted, it is kept for review and must not be
    delivered again); 503 for a refund or dispute of a payment not seen yet (deliver it
    again later)."""
    return await _receive("stripe", request, ctx)


@router.post("/sandbox")
async def sandbox_webhook(request: Request, ctx: Ctx) -> WebhookReceived:
    """The sandbox's events, checked with `Sandbox-Signature` on the raw body (404 unless
    the provider is `sandbox`); answers as for Stripe."""
    return await _receive("sandbox", request, ctx)
