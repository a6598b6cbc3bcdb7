"""Transports against real servers: aiosmtpd on loopback (pool, replies, AUTH), Maildir, DKIM."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import mailbox
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tailormail.clock import to_ms
from tailormail.deliver import Email, enqueue_many
from tailormail.deliver.admin import counts
from tailormail.deliver.headers import Signer
from tailormail.deliver.sender import Sender
from tailormail.deliver.service import build_signer, build_transport, open_sender
from tailormail.deliver.settings import DeliverSettings, deliver_settings
from tailormail.deliver.smtp import SmtpTransport
from tailormail.deliver.transport import Envelope as OutEnvelope
from tailormail.deliver.transport import MaildirTransport
from tailormail.errors import ConfigError
from tailormail.runtime import Runtime
from tailormail.store import deliver as queries


class Inbox:
    """An aiosmtpd handler keeping every message; refuses recipients by prefix."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.peers: set[Any] = set()

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope, address: str, options: Any) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 no such user"
        if address.startswith("later"):
            return "451 4.7.1 greylisted, try again"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.peers.add(session.peer)
        if any(rcpt.startswith("spamtrap") for rcpt in envelope.rcpt_tos):
            return "554 5.7.1 message content rejected"
        self.messages += [(rcpt, envelope.original_content or b"") for rcpt in envelope.rcpt_tos]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), server_hostname="inbox.local")
    controller.start()
    yield handler, controller.port
    controller.stop()


def emails(*recipients: str) -> list[Email]:
    return [
        Email(key=f"k/{to}", to=to, mime=f"From: news@shop.example\r\nTo: {to}\r\nSubject: s\r\n\r\nhi\r\n".encode())
        for to in recipients
    ]


def sender_with(runtime: Runtime, transport: Any, signer: Signer | None = None) -> Sender:
    settings = DeliverSettings(retry_base_seconds=60.0)
    return Sender(runtime.store, runtime.clock, settings, transport, secret=runtime.settings.secret, signer=signer)


def test_smtp_pool_sends_reuses_connections_and_maps_replies(runtime: Runtime, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    good = [f"p{i}@example.org" for i in range(40)]
    with runtime.store.begin() as conn:
        odd = ("bounce1@example.org", "later1@example.org", "spamtrap@example.org")
        ids = enqueue_many(conn, emails(*good, *odd), now_ms=0)
    sender = sender_with(runtime, SmtpTransport("127.0.0.1", port, security="none", connections=4))
    assert sender.run_round() == 43
    sender.close()
    assert sorted(rcpt for rcpt, _ in handler.messages) == sorted(good)
    assert 1 <= len(handler.peers) <= 4, "at most the pool's connections, reused"
    with runtime.store.read() as conn:
        assert counts(conn)["sent"] == 40
        bounced = queries.get_outbox(conn, ids["k/bounce1@example.org"])
        later = queries.get_outbox(conn, ids["k/later1@example.org"])
        refused = queries.get_outbox(conn, ids["k/spamtrap@example.org"])
        suppressed = queries.suppressed_among(conn, odd)
    assert suppressed == {"bounce1@example.org": "bounce"}, "refused content does not suppress the address"
    assert refused and refused["status"] == "failed" and refused["last_error"].startswith("554")
    assert bounced and bounced["status"] == "bounced" and bounced["last_error"].startswith("550")
    assert later and later["status"] == "queued" and later["last_error"].startswith("451")


async def _send(transport: SmtpTransport) -> Any:
    result = await transport.send(OutEnvelope("a@shop.example", "b@example.org", b"Subject: x\r\n\r\nhi\r\n", "<1@x>"))
    await transport.close()
    return result


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_auth_with_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"shop", b"s3cret")
        return AuthResult(success=ok, handled=False)

    handler = Inbox()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        server_hostname="inbox.local",
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        monkeypatch.setenv("SHOP_SMTP_PASSWORD", "s3cret")
        settings = DeliverSettings(
            transport="smtp", port=controller.port, security="none", username="shop", password_env="SHOP_SMTP_PASSWORD"
        )
        transport = build_transport(settings, Path("."))
        assert isinstance(transport, SmtpTransport)
        assert asyncio.run(_send(transport)).code == 250
        wrong = SmtpTransport("127.0.0.1", controller.port, security="none", username="shop", password="nope")
        refused = asyncio.run(_send(wrong))
        assert 400 <= refused.code < 500, "a login failure is our configuration: retry, never bounce the recipient"
    finally:
        controller.stop()
    assert [rcpt for rcpt, _ in handler.messages] == ["b@example.org"]


def test_no_server_is_a_temporary_failure() -> None:
    import asyncio

    result = asyncio.run(_send(SmtpTransport("127.0.0.1", free_port(), security="none", timeout=2)))
    assert result.code == 0 and "Error" in result.response


def _dkim_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_dkim_signature_covers_list_unsubscribe_and_verifies(
    runtime: Runtime, inbox: tuple[Inbox, int], tmp_path: Path
) -> None:
    handler, port = inbox
    key_file, record = _dkim_key(tmp_path)
    settings = DeliverSettings(dkim_key_file=str(key_file), dkim_selector="mail", domain="shop.example")
    signer = build_signer(settings, tmp_path)
    with runtime.store.begin() as conn:
        enqueue_many(conn, emails("p1@example.org"), now_ms=to_ms(runtime.clock.now()))
    sender = sender_with(runtime, SmtpTransport("127.0.0.1", port, security="none"), signer)
    sender.run_round()
    sender.close()
    [(_, received)] = handler.messages

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"mail._domainkey.shop.example." else None

    assert received.startswith(b"DKIM-Signature:")
    assert dkim.verify(received, dnsfunc=dns)
    signed = received.split(b"\r\n\r\n")[0].split(b" h=")[1].split(b";")[0].replace(b"\r\n", b"").replace(b" ", b"")
    assert b"list-unsubscribe" in signed.lower() and b"list-unsubscribe-post" in signed.lower()
    tampered = received.replace(b"/u/", b"/x/", 1)
    assert not dkim.verify(tampered, dnsfunc=dns), "a swapped unsubscribe link breaks the signature"


def test_maildir_is_the_default_and_keeps_what_was_sent(runtime: Runtime) -> None:
    sender = open_sender(runtime)
    assert isinstance(sender.transport, MaildirTransport)
    with runtime.store.begin() as conn:
        enqueue_many(conn, emails("p1@example.org", "p2@example.org"), now_ms=to_ms(runtime.clock.now()))
    assert sender.run_round() == 2
    box = mailbox.Maildir(runtime.settings.workspace / "outbox", create=False)
    got = sorted((m["Delivered-To"], m["Message-ID"] is not None, m["List-Unsubscribe-Post"]) for m in box)
    assert got == [(f"p{i}@example.org", True, "List-Unsubscribe=One-Click") for i in (1, 2)]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"transport": "pigeon"}, "transport must be one of maildir, smtp"),
        ({"port": "25"}, "[deliver].port must be a whole number, not '25'"),
        ({"hostname": "x"}, "unknown key [deliver].hostname"),
        ({"dkim_key_file": "k.pem"}, "dkim_selector is required"),
        ({"batch_size": 0}, "must be positive"),
    ],
)
def test_bad_deliver_settings_name_the_key(runtime: Runtime, table: dict[str, Any], message: str) -> None:
    from dataclasses import replace

    settings = replace(runtime.settings, raw={"deliver": table})
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        deliver_settings(settings)


def _tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_starttls_and_implicit_tls(tmp_path: Path, security: str) -> None:
    import asyncio

    server_ctx, client_ctx = _tls_contexts(tmp_path)
    handler = Inbox()
    options: dict[str, Any] = (
        {"tls_context": server_ctx, "require_starttls": True} if security == "starttls" else {"ssl_context": server_ctx}
    )
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), server_hostname="inbox.local", **options)
    controller.start()
    try:
        transport = SmtpTransport("127.0.0.1", controller.port, security=security, tls_context=client_ctx)
        assert asyncio.run(_send(transport)).code == 250
        plain = SmtpTransport("127.0.0.1", controller.port, security="none", timeout=1)
        assert asyncio.run(_send(plain)).code != 250, "the server insists on TLS"
    finally:
        controller.stop()
    assert [rcpt for rcpt, _ in handler.messages] == ["b@example.org"]


class Stalling(Inbox):
    """Never answers RCPT for addresses starting with ``stall`` (a server gone silent mid-message)."""

    def __init__(self) -> None:
        super().__init__()
        self.never = asyncio.Event()

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope, address: str, options: Any) -> str:
        if address.startswith("stall"):
            await self.never.wait()
        return await super().handle_RCPT(server, session, envelope, address, options)


def test_a_server_silent_mid_message_times_out_and_the_pool_reconnects() -> None:
    handler = Stalling()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), server_hostname="inbox.local")
    controller.start()

    async def three() -> list[Any]:
        transport = SmtpTransport("127.0.0.1", controller.port, security="none", connections=1, timeout=0.5)
        replies = [
            await transport.send(OutEnvelope("a@shop.example", to, b"Subject: x\r\n\r\nhi\r\n", f"<{to}>"))
            for to in ("b@example.org", "stall@example.org", "c@example.org")
        ]
        await transport.close()
        return replies

    try:
        first, stalled, third = asyncio.run(three())
    finally:
        controller.stop()
    assert (first.code, third.code) == (250, 250)
    assert stalled.code == 0 and "Timeout" in stalled.response, "a temporary failure: retried later"
    assert [rcpt for rcpt, _ in handler.messages] == ["b@example.org", "c@example.org"]
