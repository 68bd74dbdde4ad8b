"""How one notice reaches a team's URL: signed, and only over a connection we checked.

A notice is POSTed with the Standard Webhooks headers (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``), signed by the ``standardwebhooks``
package. The URL is the team's own, so it is treated as hostile. :func:`check_url`
refuses, before a URL is stored, what is plainly not a public https endpoint.
:class:`WebhookSender` resolves the host itself at each send, refuses private,
loopback, link-local, metadata and other non-public addresses, and connects to the
address it checked, so a name that resolves differently the second time (DNS
rebinding) gains nothing; TLS still runs against the URL's host name.

Redirects are not followed, proxies from the environment are not used, the response
body is never read (only the status counts), and a whole delivery has a deadline of
``connect_timeout + read_timeout``, so a receiver that answers a byte at a time cannot
hold a sender. ``allow_private`` (``CREDITLEDGER_NOTIFY_ALLOW_PRIVATE_URLS``) lifts
the address checks and allows http, for local use and tests.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import re
import secrets
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 24
USER_AGENT = "creditledger-notices/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata and platform endpoints: 169.254.169.254 (AWS, GCP, Azure, Oracle,
# DigitalOcean), 169.254.170.2 (ECS task credentials), fd00:ec2::254 (AWS over IPv6),
# 100.100.100.200 (Alibaba), and 168.63.129.16 (Azure's wire server, a public address).
_METADATA: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Host names the resolver reads as IPv4 without DNS: ``127.1``, ``0x7f.1``, ``2130706433``.
_NUMERIC_HOST = re.compile(r"[0-9][0-9a-fA-FxX.]*")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one send: the status the receiver answered, and why it failed."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


class UnsafeUrl(ValueError):
    """A URL notices may not be sent to; the message says why."""


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks format: ``whsec_`` and base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be delivered to (``"private"``, ...), None if it is public.

    An IPv6 address that carries an IPv4 one (IPv4-mapped, NAT64, 6to4) is judged by
    the IPv4 address, which is where a connection to it ends up.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return refusal(embedded)
    checks = (
        (address in _METADATA, "a cloud metadata address"),
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local"),
        (not address.is_global, "not public"),
    )
    return next((reason for matches, reason in checks if matches), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _literal_address(host: str) -> IPAddress | None:
    """The address ``host`` names without a DNS lookup, if it names one."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_url(url: str, allow_private: bool) -> None:
    """Raise UnsafeUrl unless url is acceptable to store: https only (http allowed only
    when allow_private), a host, no userinfo, length <= 2048, and — unless allow_private —
    the host is not an IP literal in a private, loopback, link-local, multicast, reserved,
    unspecified or cloud-metadata range (IPv4 and IPv6, including IPv4-mapped IPv6), and a
    name is not ``localhost``. Does NOT resolve DNS (resolution is checked at send time).

    The URL is read with httpx's parser, the one that sends, so both see the same host.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
        port = parsed.port
        host = parsed.host  # decoded from IDNA here: a bad label raises now, not later
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise UnsafeUrl(f"URL is not valid ({exc})") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in schemes:
        raise UnsafeUrl("URL must use " + " or ".join(schemes))
    if parsed.userinfo:
        raise UnsafeUrl("URL must not carry a user name or password")
    if not host:
        raise UnsafeUrl("URL has no host")
    if port is not None and not 0 < port < 65536:
        raise UnsafeUrl(f"URL port {port} is out of range")
    if allow_private:
        return
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        raise UnsafeUrl(f"host {host} is this machine")
    address = _literal_address(name)
    reason = None if address is None else refusal(address)
    if reason is not None:
        raise UnsafeUrl(f"address {host} is {reason}")


class WebhookSender:
    """Sends one notice per :meth:`send`, on a new connection each time; thread-safe."""

    def __init__(
        self, allow_private: bool = False, connect_timeout: float = 5.0, read_timeout: float = 10.0
    ) -> None:
        self.allow_private = allow_private
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._ssl_context = httpx.create_ssl_context(trust_env=False)

    def send(
        self, url: str, secret: str, message_id: str, timestamp: datetime, body: bytes
    ) -> Delivery:
        """POST body (application/json) with the Standard Webhooks headers webhook-id,
        webhook-timestamp (unix seconds), webhook-signature ("v1,<base64 HMAC-SHA256>"),
        signed with `secret` (whsec_…). Never raises for network or HTTP problems: returns
        a Delivery with the reason.

        Raises ValueError for what is the caller's mistake rather than the receiver's: a
        secret that is not a Standard Webhooks secret, a message id that cannot be a
        header (empty, or not printable ASCII), or a naive ``timestamp``.
        """
        headers = _signed_headers(secret, message_id, timestamp, body)
        try:
            check_url(url, self.allow_private)
        except UnsafeUrl as exc:
            return Delivery(status=None, error=str(exc))
        deadline = time.monotonic() + self.connect_timeout + self.read_timeout
        try:
            with (
                self._client(deadline) as client,
                client.stream("POST", url, content=body, headers=headers) as response,
            ):
                status = response.status_code
        except httpx.TimeoutException:
            return Delivery(status=None, error="timeout")
        except httpx.HTTPError as exc:
            return Delivery(status=None, error=_reason(exc))
        if 200 <= status < 300:
            return Delivery(status=status, error=None)
        if 300 <= status < 400:
            return Delivery(status=status, error=f"redirect not followed ({status})")
        return Delivery(status=status, error=f"status {status}")

    def _client(self, deadline: float) -> httpx.Client:
        pool = httpcore.ConnectionPool(
            ssl_context=self._ssl_context,
            max_connections=1,
            retries=0,
            network_backend=_GuardedBackend(self.allow_private, deadline),
        )
        return httpx.Client(
            transport=_PinnedTransport(pool, self._ssl_context),
            timeout=httpx.Timeout(
                connect=self.connect_timeout,
                read=self.read_timeout,
                write=self.read_timeout,
                pool=self.connect_timeout,
            ),
            follow_redirects=False,
            trust_env=False,
        )


def _signed_headers(
    secret: str, message_id: str, timestamp: datetime, body: bytes
) -> dict[str, str]:
    if not (message_id.isascii() and message_id.isprintable()) or not message_id.strip():
        raise ValueError("the message id must be printable ASCII")
    if timestamp.utcoffset() is None:
        raise ValueError("the notice timestamp must be timezone-aware")
    # The header and the signature must carry the same second: sign a UTC instant
    # already cut to whole seconds.
    seconds = math.floor(timestamp.timestamp())
    try:
        webhook = Webhook(secret)
    except EmptyWebhookSecretError as exc:
        raise ValueError("the webhook secret is empty") from exc
    signature = webhook.sign(message_id, datetime.fromtimestamp(seconds, UTC), body)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": signature,
    }


class _Refused(httpcore.ConnectError):
    """A connection the sender would not make; the message says why."""


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves the host, refuses the connection if any address is not public, and
    connects the socket to a checked address (TLS then runs over it for the host name)."""

    def __init__(self, allow_private: bool, deadline: float) -> None:
        self._allow_private = allow_private
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in self._resolve(host, port):
            within = _within(timeout, self._deadline, httpcore.ConnectTimeout)
            try:
                stream = super().connect_tcp(address, port, within, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        assert failure is not None
        raise failure

    def _resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host``; refused whole if one of them is not public."""
        try:
            found = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError) as exc:
            raise _Refused(f"host {host} could not be resolved") from exc
        addresses: list[str] = []
        for family, _, _, _, sockaddr in found:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = str(sockaddr[0])
            reason = None if self._allow_private else refusal(ipaddress.ip_address(address))
            if reason is not None:
                raise _Refused(f"address {address} is {reason}")
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise _Refused(f"host {host} has no address")
        return addresses


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every read and write ends by the delivery's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _within(timeout, self._deadline, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _within(timeout, self._deadline, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        within = _within(timeout, self._deadline, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, within), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _within(timeout: float | None, deadline: float, late: type[httpcore.TimeoutException]) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise late("the delivery ran out of time")
    return left if timeout is None else min(timeout, left)


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's transport over a pool that connects through :class:`_GuardedBackend`.

    httpx takes no network backend, so the pool it builds is replaced by ours; the check
    below fails loudly, rather than sending unguarded, if httpx stops keeping it there.
    """

    def __init__(self, pool: httpcore.ConnectionPool, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("this httpx keeps its connection pool elsewhere")
        self._pool = pool


def _reason(exc: httpx.HTTPError) -> str:
    """A short reason a person can read, from the most telling error in the chain."""
    cause: BaseException | None = exc
    for _ in range(8):
        if cause is None:
            break
        if isinstance(cause, _Refused):
            return str(cause)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"certificate not accepted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or cause})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"bad response ({_clip(str(exc))})"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.NetworkError):
        return "connection lost"
    return _clip(str(exc)) or type(exc).__name__


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
