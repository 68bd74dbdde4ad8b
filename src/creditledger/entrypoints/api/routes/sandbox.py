"""The sandbox provider's own checkout page (with ``CREDITLEDGER_PAYMENT_PROVIDER=sandbox``).

A session is paid or declined once; a settled (or expired) one says so and charges
nothing, whatever is posted to it.
"""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from creditledger.domain.errors import InvalidRequest
from creditledger.domain.money import format_amount
from creditledger.domain.payments import CheckoutPage, CheckoutState
from creditledger.entrypoints.api.deps import Ctx
from creditledger.services.purchases import sandbox_checkout

router = APIRouter(prefix="/sandbox", tags=["payment providers"], include_in_schema=False)

MAX_FORM_BYTES = 4096


@router.get("/checkout/{session_id}", response_class=HTMLResponse)
def checkout_page(session_id: str, ctx: Ctx) -> HTMLResponse:
    page = sandbox_checkout(ctx).checkout_page(session_id)
    if page is None:
        return _html("Checkout not found", "<p>This checkout session does not exist.</p>", 404)
    return _page(page)


@router.post("/checkout/{session_id}", response_class=HTMLResponse)
async def pay(session_id: str, request: Request, ctx: Ctx) -> HTMLResponse:
    body = await request.body()
    form = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"))
    card = (form.get("card_number") or [""])[0]
    sandbox = sandbox_checkout(ctx)
    error = None
    try:
        await run_in_threadpool(sandbox.pay, session_id, card)
    except InvalidRequest as exc:
        error = exc.message
    page = sandbox.checkout_page(session_id)
    if page is None:
        return _html("Checkout not found", "<p>This checkout session does not exist.</p>", 404)
    return _page(page, error, status=422 if error else 200)


SETTLED = {
    CheckoutState.PAID: ("Payment received", "Paid ${amount}."),
    CheckoutState.DECLINED: (
        "Payment declined",
        "The card was declined: this checkout of ${amount} is settled and nothing was "
        "charged. Start a new purchase to try another card.",
    ),
    CheckoutState.EXPIRED: (
        "Checkout expired",
        "This checkout of ${amount} expired before it was paid: it is settled and nothing "
        "was charged. Start a new purchase to buy credits.",
    ),
}


def _page(page: CheckoutPage, error: str | None = None, status: int = 200) -> HTMLResponse:
    amount = escape(format_amount(page.amount))
    settled = SETTLED.get(page.state)
    if settled is not None:
        title, text = settled
        back = f'<p><a href="{escape(page.return_path)}">Back to Billing</a></p>'
        return _html(title, f'<p class="settled">{text.replace("{amount}", amount)}</p>{back}')
    notice = f'<p class="error">{escape(error)}</p>' if error else ""
    form = f"""
<p>Prepaid credits: <strong>${amount}</strong></p>
{notice}
<form method="post" action="/sandbox/checkout/{escape(page.session_id)}">
  <label>Card number <input name="card_number" inputmode="numeric" autocomplete="off"
    placeholder="4242 4242 4242 4242" required></label>
  <button type="submit">Pay ${amount}</button>
</form>
<p class="hint">Sandbox test cards: 4242 4242 4242 4242 succeeds,
4000 0000 0000 0002 is declined. No real money moves.</p>"""
    return _html("Sandbox checkout", form, status)


def _html(title: str, content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · creditledger sandbox</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto}}
.error{{color:#b00020}}.hint{{color:#555;font-size:.9em}}</style></head>
<body><h1>{escape(title)}</h1>{content}</body></html>""",
        status_code=status,
    )
