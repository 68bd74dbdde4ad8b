"""Cookies, CSRF tokens and the headers every page is sent with (docs/decisions/0016).

Two cookies, both ``HttpOnly`` and ``SameSite=Lax``, and neither ever in a URL. When
the site is served over https (the request, or ``CREDITLEDGER_PUBLIC_URL``) they are
``Secure`` and named with the ``__Host-`` prefix, so no other host can plant them:

- ``creditledger_session``: a signed-in browser's session secret;
- ``creditledger_visit``: a random value for the forms shown before signing in
  (sign-in and sign-up), so that they too carry a CSRF token.

A form's CSRF token is an HMAC of the cookie's secret, so only a page the server
rendered for this browser can carry it, and signing out (a new session) voids every
token of the old one. Compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request, Response

from creditledger.domain.errors import FormExpired

SESSION_COOKIE = "creditledger_session"
VISIT_COOKIE = "creditledger_visit"
CSRF_FIELD = "csrf_token"
FORM_EXPIRED = "This form has expired. Reload the page and try again."

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def csrf_token(secret: str) -> str:
    """The token forms carry for the cookie secret ``secret``."""
    return hmac.new(secret.encode(), b"creditledger csrf v1", hashlib.sha256).hexdigest()


def check_csrf(secret: str | None, sent: object) -> None:
    """``FormExpired`` unless ``sent`` is the token of ``secret``."""
    if not secret or not isinstance(sent, str) or not sent.isascii():
        raise FormExpired(FORM_EXPIRED)
    if not hmac.compare_digest(csrf_token(secret), sent):
        raise FormExpired(FORM_EXPIRED)


def new_visit_secret() -> str:
    return secrets.token_urlsafe(32)


def _secure(request: Request) -> bool:
    public: str = request.app.state.ctx.settings.public_base_url
    return request.url.scheme == "https" or public.startswith("https://")


def _name(request: Request, name: str) -> str:
    return f"__Host-{name}" if _secure(request) else name


def read_cookie(request: Request, name: str) -> str | None:
    """The cookie ``name`` (one of the two above) as this site names it."""
    return request.cookies.get(_name(request, name))


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        _name(request, name),
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        _name(request, name), path="/", httponly=True, samesite="lax", secure=_secure(request)
    )


def with_page_headers(response: Response) -> Response:
    response.headers.update(PAGE_HEADERS)
    return response


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site (``/teams/…``), else ``default``: a
    ``next`` parameter can not send a browser elsewhere after signing in."""
    if (
        not target
        or len(target) > 500
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or not target.isascii()
        or not target.isprintable()
    ):
        return default
    return target
