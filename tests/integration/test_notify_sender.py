"""The notice sender against real receivers on localhost: signed notices arrive and
verify, failures come back as reasons, and no URL or resolved address that is not
public is ever connected to."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook, WebhookVerificationError

from creditledger.adapters.notify.sender import (
    Delivery,
    UnsafeUrl,
    WebhookSender,
    check_url,
    new_secret,
)

BODY = json.dumps({"type": "balance.low", "team": "team_1", "balance": "4.20"}).encode()
Respond = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        scheme = "https" if isinstance(self.server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host}:{self.port}{path}"


@pytest.fixture
def release() -> threading.Event:
    """Set at teardown, to let go of handlers that hold a request open."""
    return threading.Event()


@pytest.fixture
def serve(release: threading.Event) -> Iterator[Callable[..., Receiver]]:
    """Starts receivers on 127.0.0.1 that answer with ``respond``; all stop at teardown."""
    started: list[tuple[Receiver, threading.Thread]] = []

    def start(respond: Respond, tls: ssl.SSLContext | None = None) -> Receiver:
        receiver: Receiver

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.received.append(
                    Received(self.path, dict(self.headers.items()), self.rfile.read(length))
                )
                with contextlib.suppress(OSError):  # the sender may hang up first
                    respond(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        receiver = Receiver(server)
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: receiver.server_names.append(name)
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        started.append((receiver, thread))
        return receiver

    yield start
    release.set()
    for receiver, thread in started:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(5)


def answer(status: int, headers: dict[str, str] | None = None) -> Respond:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return respond


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every TCP connection attempted; the real one still runs."""
    attempts: list[object] = []
    real = socket.create_connection

    def recording(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", recording)
    return attempts


def resolve_as(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Make ``socket.getaddrinfo`` answer ``names`` with the given addresses; every host
    asked about, named or not, is recorded."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if host not in names:
            return real(host, port, *args, **kwargs)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in names[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def deliver(sender: WebhookSender, url: str, secret: str = "", **kwargs: Any) -> Delivery:
    return sender.send(
        url,
        secret or new_secret(),
        kwargs.pop("message_id", "msg_1"),
        kwargs.pop("timestamp", datetime.now(UTC)),
        kwargs.pop("body", BODY),
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Delivering


def test_a_notice_arrives_signed_and_verifies(serve: Callable[..., Receiver]) -> None:
    receiver = serve(answer(204))
    secret = new_secret()

    delivery = deliver(
        WebhookSender(allow_private=True), receiver.url(), secret, message_id="msg_42"
    )

    assert delivery == Delivery(status=204, error=None)
    assert delivery.ok
    [notice] = receiver.received
    assert notice.path == "/hook"
    assert notice.body == BODY
    headers = {name.lower(): value for name, value in notice.headers.items()}
    assert headers["webhook-id"] == "msg_42"
    assert headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(notice.body, notice.headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(notice.body, notice.headers)


def test_the_timestamp_header_is_the_signed_second_in_any_time_zone(
    serve: Callable[..., Receiver],
) -> None:
    receiver = serve(answer(200))
    secret = new_secret()
    at = datetime.now(timezone(timedelta(hours=5, minutes=30))).replace(microsecond=999_999)

    assert deliver(WebhookSender(allow_private=True), receiver.url(), secret, timestamp=at).ok

    [notice] = receiver.received
    assert notice.headers["webhook-timestamp"] == str(int(at.timestamp()))
    Webhook(secret).verify(notice.body, notice.headers)


def test_a_naive_timestamp_a_bad_secret_or_id_is_the_callers_mistake() -> None:
    sender = WebhookSender(allow_private=True)
    with pytest.raises(ValueError, match="timezone"):
        deliver(sender, "http://127.0.0.1:9/", timestamp=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="empty"):
        deliver(sender, "http://127.0.0.1:9/", secret="whsec_")
    with pytest.raises(ValueError, match="message id"):
        deliver(sender, "http://127.0.0.1:9/", message_id="msg_1\r\nX-Injected: 1")


def test_a_receiver_error_is_a_failed_delivery(serve: Callable[..., Receiver]) -> None:
    receiver = serve(answer(500))

    delivery = deliver(WebhookSender(allow_private=True), receiver.url())

    assert delivery == Delivery(status=500, error="status 500")
    assert not delivery.ok
    assert len(receiver.received) == 1


def test_a_slow_receiver_times_out(
    serve: Callable[..., Receiver], release: threading.Event
) -> None:
    def stall(handler: BaseHTTPRequestHandler) -> None:
        release.wait(5)
        answer(200)(handler)

    receiver = serve(stall)
    started = time.monotonic()

    delivery = deliver(WebhookSender(allow_private=True, read_timeout=0.3), receiver.url())

    assert delivery == Delivery(status=None, error="timeout")
    assert time.monotonic() - started < 2


def test_a_receiver_answering_a_byte_at_a_time_meets_the_deadline(
    serve: Callable[..., Receiver], release: threading.Event
) -> None:
    def drip(handler: BaseHTTPRequestHandler) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 200:
            if release.wait(0.05):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    receiver = serve(drip)
    started = time.monotonic()

    delivery = deliver(
        WebhookSender(allow_private=True, connect_timeout=0.3, read_timeout=0.3), receiver.url()
    )

    assert delivery == Delivery(status=None, error="timeout")
    assert time.monotonic() - started < 2


def test_the_response_body_is_not_read(
    serve: Callable[..., Receiver], release: threading.Event
) -> None:
    def endless(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(10**12))
        handler.end_headers()
        while not release.wait(0.01):
            handler.wfile.write(b"x" * 65536)

    receiver = serve(endless)
    started = time.monotonic()

    delivery = deliver(WebhookSender(allow_private=True, read_timeout=5), receiver.url())

    assert delivery == Delivery(status=200, error=None)
    assert time.monotonic() - started < 2


def test_nothing_listening_is_a_failed_delivery() -> None:
    delivery = deliver(WebhookSender(allow_private=True), f"http://127.0.0.1:{free_port()}/hook")

    assert delivery == Delivery(status=None, error="connection refused")


def test_a_redirect_is_not_followed(serve: Callable[..., Receiver]) -> None:
    target = serve(answer(200))
    redirecting = serve(answer(302, {"Location": target.url("/elsewhere")}))

    delivery = deliver(WebhookSender(allow_private=True), redirecting.url())

    assert delivery == Delivery(status=302, error="redirect not followed (302)")
    assert not delivery.ok
    assert len(redirecting.received) == 1
    assert target.received == []


def test_proxies_from_the_environment_are_not_used(
    serve: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(answer(200))
    receiver = serve(answer(200))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy.url("/"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    assert deliver(WebhookSender(allow_private=True), receiver.url()).ok

    assert proxy.received == []
    assert len(receiver.received) == 1


# TLS over the checked address


@dataclass
class Authority:
    """A test certificate authority, and the file of its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path

    def server_context(self, tmp_path: Path, name: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        return context


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notice tests CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(key, cert, path)


def trusting(authority: Authority) -> WebhookSender:
    sender = WebhookSender(allow_private=True)
    sender._ssl_context = ssl.create_default_context(cafile=str(authority.path))
    return sender


def test_tls_runs_for_the_host_name_over_the_resolved_address(
    serve: Callable[..., Receiver],
    authority: Authority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    connects: list[object],
) -> None:
    receiver = serve(answer(200), tls=authority.server_context(tmp_path, "notices.example"))
    asked = resolve_as(monkeypatch, {"notices.example": ["127.0.0.1"]})
    secret = new_secret()

    delivery = deliver(trusting(authority), receiver.url(host="notices.example"), secret)

    assert delivery == Delivery(status=200, error=None)
    # The connection itself only reads the checked address back.
    assert asked == ["notices.example", "127.0.0.1"]
    assert connects == [("127.0.0.1", receiver.port)]
    assert receiver.server_names == ["notices.example"]
    [notice] = receiver.received
    assert notice.headers["Host"] == f"notices.example:{receiver.port}"
    Webhook(secret).verify(notice.body, notice.headers)


def test_a_certificate_for_another_name_is_refused(
    serve: Callable[..., Receiver],
    authority: Authority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = serve(answer(200), tls=authority.server_context(tmp_path, "notices.example"))
    resolve_as(monkeypatch, {"rebound.example": ["127.0.0.1"]})

    delivery = deliver(trusting(authority), receiver.url(host="rebound.example"))

    assert delivery.status is None
    assert delivery.error is not None
    assert delivery.error.startswith("certificate not accepted")
    assert receiver.received == []


# Refusing what is not public

REFUSED = [
    ("http://127.0.0.1/hook", "https"),
    ("https://127.0.0.1/", "address 127.0.0.1 is loopback"),
    ("https://169.254.169.254/latest/meta-data", "address 169.254.169.254 is a cloud metadata"),
    ("https://[::1]/", "address ::1 is loopback"),
    ("https://[::ffff:10.0.0.1]/", "address ::ffff:10.0.0.1 is private"),
    ("https://localhost/", "localhost"),
    ("https://LocalHost./", "localhost"),
    ("https://api.localhost/", "api.localhost"),
    ("https://10.1.2.3/", "private"),
    ("https://192.168.0.1:8443/", "private"),
    ("https://100.64.0.1/", "not public"),
    ("https://100.100.100.200/", "cloud metadata"),
    ("https://168.63.129.16/", "cloud metadata"),
    ("https://[fd00:ec2::254]/", "cloud metadata"),
    ("https://[fe80::1]/", "link-local"),
    ("https://[fc00::1]/", "private"),
    ("https://[64:ff9b::a00:1]/", "private"),
    ("https://[2002:7f00:1::]/", "loopback"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://[::]/", "unspecified"),
    ("https://224.0.0.1/", "multicast"),
    ("https://240.0.0.1/", "private"),
    ("https://2130706433/", "loopback"),
    ("https://127.1/", "loopback"),
    ("https://0x7f.0.0.1/", "loopback"),
    ("https://user:pass@notices.example.com/", "user name or password"),
    ("ftp://notices.example.com/", "https"),
    ("notices.example.com/hook", "https"),
    ("https:///hook", "no host"),
    ("https://notices.example.com:70000/", "out of range"),
    ("https://notices.example.com/" + "a" * 2048, "longer than 2048"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrl, match=reason.replace(".", r"\.")):
        check_url(url, allow_private=False)


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_send_refuses_and_connects_to_nothing(
    url: str, reason: str, connects: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = resolve_as(monkeypatch, {})

    delivery = deliver(WebhookSender(), url)

    assert delivery.status is None
    assert delivery.error is not None
    assert reason in delivery.error
    assert not delivery.ok
    assert connects == []
    assert asked == []


@pytest.mark.parametrize(
    "url",
    [
        "https://notices.example.com/hooks/credit?team=t_1",
        "https://hooks.example.org:8443/",
        "https://8.8.8.8/hook",
        "https://[2001:4860:4860::8888]/hook",
        "https://bücher.example/hook",
    ],
)
def test_check_url_accepts_public_https(url: str) -> None:
    check_url(url, allow_private=False)


def test_private_and_http_are_allowed_when_asked() -> None:
    for url in (
        "http://127.0.0.1:8000/hook",
        "https://localhost/",
        "http://[::1]/",
        "http://10.0.0.1/",
    ):
        check_url(url, allow_private=True)
    with pytest.raises(UnsafeUrl, match="https or http"):
        check_url("ftp://127.0.0.1/", allow_private=True)


@pytest.mark.parametrize(
    ("addresses", "refused"),
    [
        (["10.0.0.1"], "address 10.0.0.1 is private"),
        (["127.0.0.1"], "address 127.0.0.1 is loopback"),
        (["169.254.169.254"], "address 169.254.169.254 is a cloud metadata address"),
        (["::ffff:192.168.1.1"], "address ::ffff:192.168.1.1 is private"),
        # A public answer beside a private one does not make the name acceptable.
        (["93.184.215.14", "10.0.0.1"], "address 10.0.0.1 is private"),
    ],
)
def test_a_name_resolving_to_a_private_address_is_refused_at_send(
    addresses: list[str], refused: str, monkeypatch: pytest.MonkeyPatch, connects: list[object]
) -> None:
    url = "https://notices.example.com/hook"
    check_url(url, allow_private=False)
    asked = resolve_as(monkeypatch, {"notices.example.com": addresses})

    delivery = deliver(WebhookSender(), url)

    assert delivery == Delivery(status=None, error=refused)
    assert asked == ["notices.example.com"]
    assert connects == []


def test_a_name_that_does_not_resolve_is_a_failed_delivery(
    monkeypatch: pytest.MonkeyPatch, connects: list[object]
) -> None:
    def unknown(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)

    delivery = deliver(WebhookSender(), "https://nowhere.example.com/hook")

    assert delivery == Delivery(status=None, error="host nowhere.example.com could not be resolved")
    assert connects == []


# Secrets


def test_new_secret_is_a_standard_webhooks_secret() -> None:
    first, second = new_secret(), new_secret()

    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 24
    assert first != second
    Webhook(first)  # the reference implementation reads it
