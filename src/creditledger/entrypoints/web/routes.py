"""The web pages: sign-up, sign-in, sign-out, the team picker and the Billing page.

Each route reads the form or query, calls one service and renders a template. Every
form carries a CSRF token (``security``); a page that needs a signed-in user sends
anyone else to ``/login`` and back. Forms work without JavaScript; with it,
``billing.js`` redeems promo codes in place (it asks for JSON with ``Accept``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from creditledger.domain.accounts import Principal, Role
from creditledger.domain.errors import (
    CreditLedgerError,
    Forbidden,
    FormExpired,
    InvalidCredentials,
    InvalidInput,
    InvalidRequest,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
)
from creditledger.domain.grants import GrantKind
from creditledger.domain.history import HistoryFilter
from creditledger.domain.ledger import EntryType
from creditledger.domain.money import display_amount, format_amount, typed_amount
from creditledger.domain.notices import EVENT_TYPES, NoticeState
from creditledger.domain.periods import day_range
from creditledger.domain.purchases import purchase_presets
from creditledger.entrypoints.api import downloads
from creditledger.entrypoints.api.deps import Ctx, client_address
from creditledger.entrypoints.api.errors import status_of
from creditledger.entrypoints.web import security, views
from creditledger.entrypoints.web.chart import spend_chart
from creditledger.services import (
    accounts,
    history,
    invoices,
    notices,
    promo_codes,
    purchases,
    recharge,
)
from creditledger.services import sessions as web_sessions
from creditledger.services.billing_page import BillingPage, PageQuery, billing_page
from creditledger.services.context import Context
from creditledger.services.idempotency import idempotent_request

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

FLASH = {
    "redeemed": "Promo code redeemed: its credit is in your balance.",
    "recharge-saved": "Auto-recharge settings saved.",
    "notices-saved": "Notice settings saved.",
    "notices-stopped": "Notices stopped: the webhook was removed.",
}
Field = Annotated[str, Form()]


# ---------------------------------------------------------------------------- helpers


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    security.with_page_headers(response)
    return response


def _redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    security.with_page_headers(response)
    return response


def _secret(request: Request) -> str | None:
    return security.read_cookie(request, security.SESSION_COOKIE)


def _signed_in(request: Request, ctx: Context) -> Principal | None:
    try:
        return web_sessions.session_principal(ctx, _secret(request), client_address(request))
    except Unauthenticated:
        return None


def _to_login(request: Request) -> RedirectResponse:
    if request.method == "POST":  # back to the page the form was on, not to the form's action
        here = request.url.path.rsplit("/", 1)[0]
    else:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _redirect(f"/login?next={quote(here, safe='')}")


def _user_context(ctx: Context, principal: Principal) -> dict[str, Any]:
    me = accounts.get_me(ctx, principal)
    return {"email": me.email, "teams": me.teams}


def _error_page(
    request: Request, ctx: Context, principal: Principal, team_id: str, exc: CreditLedgerError
) -> HTMLResponse:
    """The page for a refusal: a form without its token, the 403 page of a member (who
    the admins are), or the 404 page, the same for every stranger."""
    if isinstance(exc, FormExpired):
        return _page(request, "problem.html", {"error": exc.message}, 403)
    if isinstance(exc, Forbidden):
        try:
            team, admins = accounts.team_admins(ctx, principal, team_id)
        except NotFound:
            return _not_found(request, ctx, principal)
        context = {"team": team, "admins": admins, **_user_context(ctx, principal)}
        return _page(request, "forbidden.html", context, 403)
    return _not_found(request, ctx, principal)


def _not_found(request: Request, ctx: Context, principal: Principal | None) -> HTMLResponse:
    user = _user_context(ctx, principal) if principal else {}
    return _page(request, "not_found.html", user, 404)


def _visit_secret(request: Request) -> tuple[str, bool]:
    """The browser's pre-sign-in secret, and whether it is new (to be set)."""
    current = security.read_cookie(request, security.VISIT_COOKIE)
    if current and len(current) <= web_sessions.MAX_SECRET_LENGTH and current.isascii():
        return current, False
    return security.new_visit_secret(), True


def _anonymous_form(
    request: Request, name: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    secret, new = _visit_secret(request)
    response = _page(request, name, {"csrf": security.csrf_token(secret), **context}, status)
    if new:
        security.set_cookie(request, response, security.VISIT_COOKIE, secret, 24 * 3600)
    return response


def _start_session(
    request: Request, ctx: Context, started: web_sessions.NewSession, target: str
) -> RedirectResponse:
    response = _redirect(target)
    max_age = ctx.settings.web_session_hours * 3600
    security.set_cookie(request, response, security.SESSION_COOKIE, started.secret, max_age)
    return response


# ---------------------------------------------------------------------------- sign-in


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    if _signed_in(request, ctx) is not None:
        return _redirect(security.local_path(next))
    return _anonymous_form(request, "login.html", {"next": security.local_path(next, "")})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    ctx: Ctx,
    email: Field = "",
    password: Field = "",
    next: Field = "",
    csrf_token: Field = "",
) -> Response:
    context: dict[str, Any] = {"next": security.local_path(next, ""), "typed_email": email[:254]}
    try:
        security.check_csrf(security.read_cookie(request, security.VISIT_COOKIE), csrf_token)
        started = web_sessions.sign_in(
            ctx, email, password, client_address(request), replacing=_secret(request)
        )
    except (InvalidCredentials, TooManyAttempts, Forbidden) as exc:
        context["error"] = exc.message
        return _anonymous_form(request, "login.html", context, status_of(exc))
    return _start_session(request, ctx, started, security.local_path(next))


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request, ctx: Ctx) -> Response:
    if _signed_in(request, ctx) is not None:
        return _redirect("/")
    return _anonymous_form(request, "signup.html", {})


@router.post("/signup", response_class=HTMLResponse)
def signup(
    request: Request,
    ctx: Ctx,
    email: Field = "",
    password: Field = "",
    team_name: Field = "",
    csrf_token: Field = "",
) -> Response:
    context = {"typed_email": email[:254], "typed_team": team_name[:200]}
    try:
        security.check_csrf(security.read_cookie(request, security.VISIT_COOKIE), csrf_token)
        made = web_sessions.sign_up(
            ctx, email, password, team_name, client_address(request), replacing=_secret(request)
        )
    except CreditLedgerError as exc:
        if status_of(exc) >= 500:
            raise
        return _anonymous_form(
            request, "signup.html", {**context, "error": exc.message}, status_of(exc)
        )
    return _start_session(request, ctx, made.signed_in, _billing_path(made.team.id))


@router.get("/logout", response_class=HTMLResponse)
def logout_page(request: Request, ctx: Ctx) -> Response:
    principal = _signed_in(request, ctx)
    if principal is None:
        return _redirect("/login")
    secret = _secret(request)
    assert secret is not None
    context = {"csrf": security.csrf_token(secret), **_user_context(ctx, principal)}
    return _page(request, "logout.html", context)


@router.post("/logout", response_class=HTMLResponse)
def logout(request: Request, ctx: Ctx, csrf_token: Field = "") -> Response:
    secret = _secret(request)
    try:
        security.check_csrf(secret, csrf_token)
    except Forbidden as exc:
        return _page(request, "problem.html", {"error": exc.message}, 403)
    web_sessions.sign_out(ctx, secret)
    response = _redirect("/login")
    security.clear_cookie(request, response, security.SESSION_COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, ctx: Ctx) -> Response:
    """A signed-in user's team: straight to it when there is one, else a picker."""
    principal = _signed_in(request, ctx)
    if principal is None:
        return _redirect("/login")
    user = _user_context(ctx, principal)
    teams: list[tuple[Any, Role]] = user["teams"]
    if len(teams) == 1:
        return _redirect(_billing_path(teams[0][0].id))
    return _page(request, "teams.html", user)


# ---------------------------------------------------------------------------- Billing


def _billing_path(team_id: str) -> str:
    return f"/teams/{quote(team_id, safe='')}/settings/billing"


def _history_filter(request: Request) -> tuple[HistoryFilter, dict[str, str], list[str]]:
    """The history filter of the query string, the values to show back in the form, and
    what was not understood (left out of the filter and said so)."""
    query = request.query_params
    typed = {name: query.get(name, "")[:40] for name in ("type", "kind", "since", "until")}
    problems = []
    entry_type = kind = None
    if typed["type"]:
        try:
            entry_type = EntryType(typed["type"])
        except ValueError:
            problems.append("Unknown entry type; showing every type.")
    if typed["kind"]:
        try:
            kind = GrantKind(typed["kind"])
        except ValueError:
            problems.append("Unknown credit kind; showing both kinds.")
    try:
        since, until = day_range(typed["since"], typed["until"])
    except InvalidRequest as exc:
        problems.append(f"{exc.message} The dates were left out.")
        since = until = None
    return HistoryFilter(entry_type, kind, since, until), typed, problems


def _page_query(request: Request) -> tuple[PageQuery, dict[str, str], list[str]]:
    flt, typed, problems = _history_filter(request)
    query = request.query_params
    cursor = query.get("cursor") or None
    purchase = query.get("purchase") or None
    return (
        PageQuery(
            history=flt,
            history_cursor=cursor[:200] if cursor else None,
            spend_by_model=query.get("spend") == "model",
            returned_from=purchase[:64] if purchase else None,
        ),
        typed,
        problems,
    )


def _render_billing(
    request: Request,
    ctx: Context,
    principal: Principal,
    team_id: str,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    typed: dict[str, str] | None = None,
    shown: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The page; ``shown``: what only this answer shows (a new secret, a test's result)."""
    query, filters, problems = _page_query(request)
    try:
        page = billing_page(ctx, principal, team_id, query)
    except InvalidInput as exc:  # a cursor from another list or a damaged one
        problems.append(exc.message)
        page = billing_page(
            ctx, principal, team_id, PageQuery(query.history, None, 25, query.spend_by_model)
        )
    secret = _secret(request)
    assert secret is not None
    settings = ctx.settings
    context = {
        **_user_context(ctx, principal),
        **_billing_context(ctx, page, request, filters),
        "team_id": team_id,
        "billing_path": _billing_path(team_id),
        "csrf": security.csrf_token(secret),
        "errors": errors or {},
        "problems": problems,
        "typed": typed or {},
        "flash": FLASH.get(request.query_params.get("flash", "")),
        "open_redeem": request.query_params.get("redeem") == "1"
        or bool(errors and "redeem" in errors),
        "idempotency_key": security.new_visit_secret(),
        "presets": [
            (format_amount(p), display_amount(p))
            for p in purchase_presets(settings.purchase_min_nanos, settings.purchase_max_nanos)
        ],
        "purchase_min": display_amount(settings.purchase_min_nanos),
        **(shown or {}),
    }
    return _page(request, "billing.html", context, status)


def _billing_context(
    ctx: Context, page: BillingPage, request: Request, filters: dict[str, str]
) -> dict[str, Any]:
    balance = page.balance
    credits = [views.credit_view(g, page.now) for g in page.credits]
    base = _billing_path(balance.team.id)
    keep = {k: v for k, v in filters.items() if v}
    spend_by = "model" if request.query_params.get("spend") == "model" else "product"
    returned = views.purchase_message(page.returned) if page.returned else None
    next_page = None
    if page.history.next_cursor:
        next_page = (
            f"{base}?{urlencode({**keep, 'spend': spend_by, 'cursor': page.history.next_cursor})}"
            "#credit-history"
        )
    contact = ctx.settings.sales_contact
    return {
        "team": balance.team,
        "promotional": display_amount(balance.promotional),
        "prepaid": display_amount(balance.prepaid),
        "unpaid": display_amount(balance.team.unpaid),
        "held": display_amount(balance.held) if balance.held else None,
        "tier": views.tier_view(balance, ctx.settings.purchase_min_nanos),
        "credits": [c for c in credits if c.usable],
        "past_credits": [c for c in credits if not c.usable],
        "recharge": views.recharge_view(page.auto_recharge),
        "chart": spend_chart(page.spend),
        "spend_by": spend_by,
        "spend_links": {
            by: f"{base}?{urlencode({**keep, 'spend': by})}#spend-chart"
            for by in ("product", "model")
        },
        "entries": [views.entry_view(e) for e in page.history.entries],
        "history_next": next_page,
        "history_newest": (
            f"{base}?{urlencode({**keep, 'spend': spend_by})}#credit-history"
            if request.query_params.get("cursor")
            else None
        ),
        "history_csv": f"{base}/credit-history.csv" + (f"?{urlencode(keep)}" if keep else ""),
        "filters": filters,
        "entry_types": [(t.value, views.ENTRY_TYPE[t]) for t in EntryType],
        "kinds": [(k.value, views.KIND[k]) for k in GrantKind],
        "invoices": [views.invoice_view(i) for i in page.invoices],
        "webhook": views.webhook_view(page.webhook),
        "notice_log": [views.notice_view(n) for n in page.notices],
        "returned": returned,
        "sales_href": contact if contact.startswith("https://") else f"mailto:{contact}",
    }


def _user_or_login(request: Request, ctx: Context) -> Principal | Response:
    """The signed-in user, or the way to the sign-in page and back here."""
    principal = _signed_in(request, ctx)
    return _to_login(request) if principal is None else principal


@router.get("/teams/{team_id}/settings/billing", response_class=HTMLResponse)
def billing(team_id: str, request: Request, ctx: Ctx) -> Response:
    principal = _user_or_login(request, ctx)
    if isinstance(principal, Response):
        return principal
    try:
        return _render_billing(request, ctx, principal, team_id)
    except (Forbidden, NotFound) as exc:
        return _error_page(request, ctx, principal, team_id, exc)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return security.with_page_headers(JSONResponse(body, status))


@router.post("/teams/{team_id}/settings/billing/promo-code", response_class=HTMLResponse)
def redeem(
    team_id: str, request: Request, ctx: Ctx, code: Field = "", csrf_token: Field = ""
) -> Response:
    principal = _user_or_login(request, ctx)
    if isinstance(principal, Response):
        if _wants_json(request):  # the page's script: it shows the message in the dialog
            body = {"ok": False, "code": "unauthenticated", "message": web_sessions.SIGNED_OUT}
            return _json(body, 401)
        return principal
    try:
        security.check_csrf(_secret(request), csrf_token)
        grant = promo_codes.redeem_promo_code(ctx, principal, team_id, code)
    except (Forbidden, NotFound) as exc:
        if _wants_json(request):
            return _json({"ok": False, "code": exc.code, "message": exc.message}, status_of(exc))
        return _error_page(request, ctx, principal, team_id, exc)
    except CreditLedgerError as exc:
        if status_of(exc) >= 500:
            raise
        if _wants_json(request):
            return _json({"ok": False, "code": exc.code, "message": exc.message}, status_of(exc))
        return _render_billing(
            request,
            ctx,
            principal,
            team_id,
            errors={"redeem": exc.message},
            status=status_of(exc),
            typed={"code": code[:100]},
        )
    message = f"Promo code redeemed: {display_amount(grant.amount)} of credit was added."
    if _wants_json(request):
        return _json({"ok": True, "message": message})
    return _redirect(f"{_billing_path(team_id)}?flash=redeemed")


@router.post("/teams/{team_id}/settings/billing/purchases", response_class=HTMLResponse)
def buy(
    team_id: str,
    request: Request,
    ctx: Ctx,
    amount: Field = "",
    custom_amount: Field = "",
    idempotency_key: Field = "",
    csrf_token: Field = "",
) -> Response:
    """Start a purchase and send the admin to the provider's checkout page."""
    principal = _user_or_login(request, ctx)
    if isinstance(principal, Response):
        return principal
    chosen = typed_amount(custom_amount) if amount == "custom" else amount
    try:
        security.check_csrf(_secret(request), csrf_token)
        checked = idempotent_request(
            principal.caller_id,
            idempotency_key or None,
            "POST",
            f"{_billing_path(team_id)}/purchases",
            required=True,
        )
        _, checkout_url = purchases.start_purchase(
            ctx,
            principal,
            team_id,
            chosen,
            checked,
            lambda purchase: (201, purchase.checkout_url or ""),
        )
    except (Forbidden, NotFound) as exc:
        return _error_page(request, ctx, principal, team_id, exc)
    except CreditLedgerError as exc:
        if status_of(exc) >= 500 and status_of(exc) != 503:
            raise
        return _render_billing(
            request,
            ctx,
            principal,
            team_id,
            errors={"buy": exc.message},
            status=status_of(exc),
            typed={"custom_amount": custom_amount[:20]},
        )
    if urlsplit(checkout_url).scheme not in ("http", "https"):
        raise RuntimeError("the payment provider gave no checkout address")
    return RedirectResponse(checkout_url, status_code=303)


@router.post("/teams/{team_id}/settings/billing/auto-recharge", response_class=HTMLResponse)
def save_auto_recharge(
    team_id: str,
    request: Request,
    ctx: Ctx,
    enabled: Field = "",
    threshold: Field = "",
    restore_to: Field = "",
    csrf_token: Field = "",
) -> Response:
    def save(principal: Principal) -> dict[str, Any] | str:
        recharge.set_auto_recharge(
            ctx,
            principal,
            team_id,
            enabled == "on",
            typed_amount(threshold) or None,
            typed_amount(restore_to) or None,
        )
        return "recharge-saved"

    typed = {"threshold": threshold[:20], "restore_to": restore_to[:20]}
    return _billing_form(request, ctx, team_id, csrf_token, "recharge", save, typed)


SECTIONS = {"recharge": "auto-recharge", "notices": "notices"}
"""A form's key in ``errors`` → the id of its section on the page."""


def _billing_form(
    request: Request,
    ctx: Context,
    team_id: str,
    csrf_token: str,
    section: str,
    act: Callable[[Principal], dict[str, Any] | str],
    typed: dict[str, str] | None = None,
) -> Response:
    """Run one form of the Billing page after its CSRF check. A refusal shows on the page
    in ``section``; otherwise ``act`` gives a flash key to redirect with, or what to show
    on the page answered at once (a secret is never put in a URL)."""
    principal = _user_or_login(request, ctx)
    if isinstance(principal, Response):
        return principal
    try:
        security.check_csrf(_secret(request), csrf_token)
        outcome = act(principal)
    except (Forbidden, NotFound) as exc:
        return _error_page(request, ctx, principal, team_id, exc)
    except CreditLedgerError as exc:
        if status_of(exc) >= 500:
            raise
        return _render_billing(
            request,
            ctx,
            principal,
            team_id,
            errors={section: exc.message},
            status=status_of(exc),
            typed=typed,
        )
    if isinstance(outcome, str):
        return _redirect(f"{_billing_path(team_id)}?flash={outcome}#{SECTIONS[section]}")
    return _render_billing(request, ctx, principal, team_id, shown=outcome)


@router.post("/teams/{team_id}/settings/billing/notices", response_class=HTMLResponse)
def save_notices(
    team_id: str,
    request: Request,
    ctx: Ctx,
    url: Field = "",
    events: Annotated[list[str] | None, Form()] = None,
    csrf_token: Field = "",
) -> Response:
    def save(principal: Principal) -> dict[str, Any] | str:
        ticked = events or []
        chosen = None if set(ticked) >= set(EVENT_TYPES) else ticked  # every box: all types
        view = notices.set_webhook(ctx, principal, team_id, url.strip(), chosen)
        return "notices-saved" if view.secret is None else {"new_secret": view.secret}

    return _billing_form(request, ctx, team_id, csrf_token, "notices", save, {"url": url[:2048]})


@router.post("/teams/{team_id}/settings/billing/notices/test", response_class=HTMLResponse)
def send_test_notice(team_id: str, request: Request, ctx: Ctx, csrf_token: Field = "") -> Response:
    def ping(principal: Principal) -> dict[str, Any] | str:
        sent = notices.send_test(ctx, principal, team_id)
        if sent.state is NoticeState.DELIVERED:
            return {"notice_result": ("success", "Test notice delivered.")}
        why = sent.last_error or "not delivered"
        return {"notice_result": ("error", f"Test notice not delivered: {why}. It is tried again.")}

    return _billing_form(request, ctx, team_id, csrf_token, "notices", ping)


@router.post("/teams/{team_id}/settings/billing/notices/rotate-secret", response_class=HTMLResponse)
def rotate_notice_secret(
    team_id: str, request: Request, ctx: Ctx, csrf_token: Field = ""
) -> Response:
    def rotate(principal: Principal) -> dict[str, Any] | str:
        return {"new_secret": notices.rotate_secret(ctx, principal, team_id).secret}

    return _billing_form(request, ctx, team_id, csrf_token, "notices", rotate)


@router.post("/teams/{team_id}/settings/billing/notices/delete", response_class=HTMLResponse)
def stop_notices(team_id: str, request: Request, ctx: Ctx, csrf_token: Field = "") -> Response:
    def stop(principal: Principal) -> dict[str, Any] | str:
        notices.delete_webhook(ctx, principal, team_id)
        return "notices-stopped"

    return _billing_form(request, ctx, team_id, csrf_token, "notices", stop)


@router.get("/teams/{team_id}/settings/billing/credit-history.csv")
def history_csv(team_id: str, request: Request, ctx: Ctx) -> Response:
    principal = _user_or_login(request, ctx)
    if isinstance(principal, Response):
        return principal
    flt, _, problems = _history_filter(request)
    if problems:  # a download of everything instead of what was asked for would mislead
        return _page(request, "problem.html", {"error": " ".join(problems)}, 422)
    try:
        entries = history.export_history(ctx, principal, team_id, flt)
    except (Forbidden, NotFound) as exc:
        return _error_page(request, ctx, principal, team_id, exc)
    return security.with_page_headers(downloads.history_csv(entries, team_id, ctx.clock.now()))


@router.get("/teams/{team_id}/settings/billing/invoices/{invoice_id}.pdf")
def invoice_pdf(team_id: str, invoice_id: str, request: Request, ctx: Ctx) -> Response:
    principal = _user_or_login(request, ctx)
    if isinstance(principal, Response):
        return principal
    try:
        document = invoices.invoice_document(ctx, principal, team_id, invoice_id)
    except (Forbidden, NotFound) as exc:
        return _error_page(request, ctx, principal, team_id, exc)
    return security.with_page_headers(downloads.invoice_pdf(document))
