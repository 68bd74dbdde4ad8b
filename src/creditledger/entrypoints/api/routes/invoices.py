"""Invoices: the list, one invoice, its PDF, paying it, and voiding it (operators)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response

from creditledger.domain.invoices import InvoiceStatus
from creditledger.entrypoints.api import downloads
from creditledger.entrypoints.api.deps import Caller, Ctx, Cursor, IdempotentRequired, Limit
from creditledger.entrypoints.api.openapi import answer, errors, idempotency_key
from creditledger.entrypoints.api.schemas import (
    InvoicePage,
    InvoicePay,
    InvoicePaymentPublic,
    InvoicePublic,
    InvoiceVoid,
    invoice_payment_public,
    invoice_public,
)
from creditledger.services import invoices

router = APIRouter(prefix="/v1/teams/{team_id}", tags=["invoices"])


@router.get("/invoices")
def list_invoices(
    team_id: str,
    ctx: Ctx,
    caller: Caller,
    status: Annotated[InvoiceStatus | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> InvoicePage:
    """The team's invoices, newest month first: the current month's draft with its lines
    up to date, then every invoice opened."""
    page = invoices.list_invoices(ctx, caller, team_id, status, cursor, limit)
    return InvoicePage(
        data=[invoice_public(i) for i in page.invoices], next_cursor=page.next_cursor
    )


@router.get(
    "/invoices/{invoice_id}.pdf",
    response_class=Response,
    responses={
        200: {
            "description": "The invoice as a PDF document",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def invoice_pdf(team_id: str, invoice_id: str, ctx: Ctx, caller: Caller) -> Response:
    return downloads.invoice_pdf(invoices.invoice_document(ctx, caller, team_id, invoice_id))


@router.get("/invoices/{invoice_id}")
def get_invoice(team_id: str, invoice_id: str, ctx: Ctx, caller: Caller) -> InvoicePublic:
    return invoice_public(invoices.get_invoice(ctx, caller, team_id, invoice_id))


@router.post(
    "/invoices/{invoice_id}/pay",
    response_model=None,
    responses=answer(InvoicePaymentPublic) | errors(409),
    openapi_extra=idempotency_key(required=True),
)
def pay_invoice(
    team_id: str,
    invoice_id: str,
    body: InvoicePay,
    ctx: Ctx,
    idempotent: IdempotentRequired,
) -> Response:
    """Pay an open or uncollectible invoice: answers a `checkout_url` to pay on, or, with
    `use_saved_payment_method: true`, charges the saved card now and answers the outcome.

    Team admins; needs an `Idempotency-Key`.
    """
    pay = partial(
        invoices.pay_invoice,
        ctx,
        idempotent.caller,
        team_id,
        invoice_id,
        body.use_saved_payment_method,
    )
    return idempotent.call(pay, invoice_payment_public, status_code=200)


@router.post("/invoices/{invoice_id}/void", tags=["operators"], responses=errors(409))
def void_invoice(
    team_id: str, invoice_id: str, body: InvoiceVoid, ctx: Ctx, caller: Caller
) -> InvoicePublic:
    """Operators: write the invoice off with a note; it is never billed again."""
    return invoice_public(invoices.void_invoice(ctx, caller, team_id, invoice_id, body.note))
