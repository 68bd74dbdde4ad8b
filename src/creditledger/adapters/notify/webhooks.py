"""The notice sender of a deployment: :class:`sender.WebhookSender` as the service sees
it (``services.ports.NoticeSender``)."""

from __future__ import annotations

from datetime import datetime

from creditledger.adapters.notify import sender


class StandardWebhooks:
    """Standard Webhooks over HTTPS, refusing private addresses unless ``allow_private``
    (``CREDITLEDGER_NOTIFY_ALLOW_PRIVATE_URLS``, for local use and tests)."""

    def __init__(self, allow_private: bool = False) -> None:
        self.allow_private = allow_private
        self._sender = sender.WebhookSender(allow_private=allow_private)

    def check_url(self, url: str) -> str | None:
        try:
            sender.check_url(url, self.allow_private)
        except sender.UnsafeUrl as exc:
            return str(exc)
        return None

    def send(
        self, url: str, secret: str, message_id: str, at: datetime, body: bytes
    ) -> tuple[int | None, str | None]:
        delivery = self._sender.send(url, secret, message_id, at, body)
        return delivery.status, None if delivery.ok else delivery.error or "not delivered"

    def new_secret(self) -> str:
        return sender.new_secret()
