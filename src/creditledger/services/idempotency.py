"""Idempotency-Key semantics for calls that move money (docs/api.md, Conventions).

The first request with a key claims it in a short transaction of its own, so a
concurrent duplicate sees the claim and gets ``request_in_progress``. The effect
and the stored answer then commit together: a replay returns exactly that answer.
A request that fails with a client error releases its claim, so a corrected
retry may reuse the key. A claim left by a crashed process is taken over after
``STALE_CLAIM``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from creditledger.domain.errors import (
    BadIdempotencyKey,
    CreditLedgerError,
    IdempotencyKeyReused,
    MissingIdempotencyKey,
    RequestInProgress,
)
from creditledger.services.context import Context
from creditledger.services.ports import UnitOfWork

STALE_CLAIM = timedelta(seconds=60)
MAX_KEY_LENGTH = 255

T = TypeVar("T")


def check_key(key: str | None) -> str:
    if key is None:
        raise MissingIdempotencyKey(
            "This call moves money: send an `Idempotency-Key` header (a unique string per "
            "operation, up to 255 characters).",
            param="Idempotency-Key",
        )
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise BadIdempotencyKey(
            "`Idempotency-Key` must be 1 to 255 printable ASCII characters.",
            param="Idempotency-Key",
        )
    return key


def request_fingerprint(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotentRequest:
    """One call that moves money, under its caller's ``Idempotency-Key``.

    ``key`` has passed :func:`check_key`; it is None only on a call whose key is
    optional and was not sent, which then simply runs once. ``method`` and ``path``
    (the concrete path, ids filled in) with the request's body make its fingerprint.
    """

    caller: str
    """The identity keys are scoped to (``Principal.caller_id``)."""
    key: str | None
    method: str
    path: str

    def fingerprint(self, body: bytes) -> str:
        return request_fingerprint(self.method.encode(), self.path.encode(), body)


def idempotent_request(
    caller: str, key: str | None, method: str, path: str, *, required: bool
) -> IdempotentRequest:
    """The request with its key checked: a missing key is refused only when ``required``."""
    checked = check_key(key) if required or key is not None else None
    return IdempotentRequest(caller=caller, key=checked, method=method, path=path)


def run_request(
    ctx: Context,
    request: IdempotentRequest,
    body: bytes,
    effect: Callable[[UnitOfWork], T],
    render: Callable[[T], tuple[int, str]],
) -> tuple[int, str]:
    """Run ``effect`` once for ``request`` with this ``body``; return the (status, body) to
    send. Without a key, ``effect`` runs in a transaction of its own."""
    if request.key is None:
        with ctx.uow() as uow:
            result = effect(uow)
            uow.commit()
        return render(result)
    return run_idempotent(
        ctx, request.caller, request.key, request.fingerprint(body), effect, render
    )


def run_idempotent(
    ctx: Context,
    caller: str,
    key: str,
    fingerprint: str,
    effect: Callable[[UnitOfWork], T],
    render: Callable[[T], tuple[int, str]],
) -> tuple[int, str]:
    """Run ``effect`` once per (caller, key); return the (status, body) to send."""
    replay = claim_key(ctx, caller, key, fingerprint)
    if replay is not None:
        return replay
    return finish_claimed(ctx, caller, key, effect, render)


def claim_key(ctx: Context, caller: str, key: str, fingerprint: str) -> tuple[int, str] | None:
    """Claim (caller, key) in a transaction of its own; the stored answer when it was used.

    After a None, the caller owns the key and must end with :func:`finish_claimed`
    (or :func:`release_key` on a client error).
    """
    with ctx.uow() as uow:
        now = ctx.clock.now()
        seen = uow.idempotency.claim(
            caller, key, fingerprint, now, ctx.settings.idempotency_ttl_hours
        )
        if seen is not None and seen[1] is None and seen[0] == fingerprint:
            if not uow.idempotency.take_over_stale(
                caller, key, fingerprint, now, now - STALE_CLAIM
            ):
                raise RequestInProgress(
                    "A request with this Idempotency-Key is still running; retry in a moment."
                )
            seen = None
        uow.commit()
    if seen is None:
        return None
    stored_hash, status, body = seen
    if stored_hash != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request; use a new key.",
            param="Idempotency-Key",
        )
    assert status is not None and body is not None
    return status, body


def finish_claimed(
    ctx: Context,
    caller: str,
    key: str,
    effect: Callable[[UnitOfWork], T],
    render: Callable[[T], tuple[int, str]],
) -> tuple[int, str]:
    """Run ``effect`` and store its answer in one transaction; a client error releases."""
    try:
        with ctx.uow() as uow:
            status, body = render(effect(uow))
            if not uow.idempotency.complete(caller, key, status, body):
                raise RequestInProgress(
                    "A request with this Idempotency-Key is still running; retry in a moment."
                )
            uow.commit()
    except RequestInProgress:
        raise
    except CreditLedgerError:
        release_key(ctx, caller, key)
        raise
    return status, body


def release_key(ctx: Context, caller: str, key: str) -> None:
    with ctx.uow() as uow:
        uow.idempotency.release(caller, key)
        uow.commit()
