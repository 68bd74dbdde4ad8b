"""The notice sender of a deployment: :class:`sender.WebhookSender` as the service sees
it (``services.ports.NoticeSender``)."""

from __future__ import annotations

from datetime import UTC, datetime

from creditledger.adapters.notify import sender


class StandardWebhooks:
    """Standard Webhooks over HTTPS, refusing private addresses unless ``allow_private``
    (``CREDITLEDGER_NOTIFY_ALLOW_PRIVATE_URLS``, for local use and tests)."""

    def __init__(self, allow_private: bool = False, read_timeout: float = 10.0) -> None:
        self.allow_private = allow_private
        self._sender = sender.WebhookSender(allow_private=allow_private, read_timeout=read_timeout)

    def check_url(self, url: str) -> str | None:
        try:
            sender.check_url(url, self.allow_private)
        except sender.UnsafeUrl as exc:
            return str(exc)
        return None

    def send(
        self, url: str, secret: str, message_id: str, body: bytes
    ) -> tuple[int | None, str | None]:
        # Signed at the moment of the try, by the wall clock: receivers refuse a
        # ``webhook-timestamp`` far from their own time (replay protection).
        delivery = self._sender.send(url, secret, message_id, datetime.now(UTC), body)
        return delivery.status, None if delivery.ok else delivery.error or "not delivered"

    def new_secret(self) -> str:
        return sender.new_secret()
