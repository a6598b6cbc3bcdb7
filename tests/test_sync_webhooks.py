"""The outbound client: address policy, pinning, signatures, backoff, rate limits."""

from __future__ import annotations

import ipaddress
import json
import ssl
from pathlib import Path
from typing import Any

import pytest

from crm_peer import Peer, serve
from tailormail.deliver.webhooks import (
    SIGNATURE_HEADER,
    AddressPolicy,
    Backoff,
    ForbiddenAddress,
    RateLimiter,
    is_public,
    make_client,
    post_signed,
    post_with_retries,
    sign_body,
    verify_signature,
)

ADDRESS_CASES = [
    ("public v4", "93.184.216.34", True),
    ("public v6", "2606:2800:220:1:248:1893:25c8:1946", True),
    ("loopback", "127.0.0.1", False),
    ("loopback v6", "::1", False),
    ("private 10/8", "10.1.2.3", False),
    ("private 192.168", "192.168.0.10", False),
    ("private 172.16", "172.20.0.1", False),
    ("link-local (cloud metadata)", "169.254.169.254", False),
    ("multicast", "224.0.0.1", False),
    ("reserved", "240.0.0.1", False),
    ("unspecified", "0.0.0.0", False),
    ("carrier-grade NAT", "100.64.0.1", False),
    ("v4-mapped loopback", "::ffff:127.0.0.1", False),
    ("unique local v6", "fd00::1", False),
]


@pytest.mark.parametrize(("case", "address", "public"), ADDRESS_CASES, ids=[c[0] for c in ADDRESS_CASES])
def test_which_addresses_are_public(case: str, address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


POLICY_CASES = [
    ("public allowed by default", AddressPolicy(), ["93.184.216.34"], True),
    ("loopback refused by default", AddressPolicy(), ["127.0.0.1"], False),
    ("one bad address among good ones refuses", AddressPolicy(), ["93.184.216.34", "10.0.0.1"], False),
    ("allow_private admits loopback", AddressPolicy(allow_private=True), ["127.0.0.1"], True),
    ("allow_private still refuses multicast", AddressPolicy(allow_private=True), ["224.0.0.1"], False),
    ("a listed network is allowed", AddressPolicy(allowed_networks=("10.0.0.0/8",)), ["10.9.9.9"], True),
    ("a network not listed is not", AddressPolicy(allowed_networks=("10.0.0.0/8",)), ["192.168.1.1"], False),
    ("no address at all", AddressPolicy(), [], False),
]


@pytest.mark.parametrize(("case", "policy", "addresses", "ok"), POLICY_CASES, ids=[c[0] for c in POLICY_CASES])
def test_address_policy(case: str, policy: AddressPolicy, addresses: list[str], ok: bool) -> None:
    if ok:
        assert policy.check("host.example", addresses) == addresses[0]
    else:
        with pytest.raises(ForbiddenAddress):
            policy.check("host.example", addresses)


def echo(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
    return 200, {"ok": True}, {}


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup() -> None:
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    with serve({"/hook": echo}) as peer:
        port = peer.base_url.rsplit(":", 1)[1]
        # crm.invalid cannot resolve through DNS: the request only works if it uses the address we checked.
        with make_client(AddressPolicy(allow_private=True), resolver=resolver) as client:
            response = client.post(f"http://crm.invalid:{port}/hook", content=b"{}")
        assert response.status_code == 200
        assert lookups == ["crm.invalid"]
        assert peer.requests[0][2]["Host"] == f"crm.invalid:{port}"


def test_a_host_resolving_to_loopback_is_refused_before_connecting() -> None:
    with serve({"/hook": echo}) as peer:
        port = peer.base_url.rsplit(":", 1)[1]
        client = make_client(AddressPolicy(), resolver=lambda host, port: ["127.0.0.1"])
        outcome = post_signed(client, f"http://innocent.example:{port}/hook", {}, secret="k", unix_seconds=0)
        client.close()
    assert not outcome.ok and not outcome.retryable and "non-public" in (outcome.error or "")
    assert peer.requests == []


def test_bodies_are_signed_and_the_signature_verifies() -> None:
    with serve({"/hook": echo}) as peer:
        with make_client(AddressPolicy(allow_private=True)) as client:
            outcome = post_signed(client, f"{peer.base_url}/hook", {"b": 1, "a": 2}, secret="k", unix_seconds=1000)
        _, _, headers, body = peer.requests[0]
    assert outcome.ok and json.loads(body) == {"a": 2, "b": 1}
    assert verify_signature("k", body, headers[SIGNATURE_HEADER], now_seconds=1010)
    assert not verify_signature("other", body, headers[SIGNATURE_HEADER], now_seconds=1010)
    assert not verify_signature("k", body + b" ", headers[SIGNATURE_HEADER], now_seconds=1010)
    assert not verify_signature("k", body, headers[SIGNATURE_HEADER], now_seconds=1000 + 301)  # a replay
    assert headers[SIGNATURE_HEADER] == sign_body("k", body, 1000)


def test_post_with_retries_backs_off_then_succeeds() -> None:
    calls = {"n": 0}

    def flaky(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
        calls["n"] += 1
        return (503, {}, {}) if calls["n"] < 3 else (200, {}, {})

    waits: list[float] = []
    with serve({"/hook": flaky}) as peer, make_client(AddressPolicy(allow_private=True)) as client:
        outcome, tries = post_with_retries(
            client,
            f"{peer.base_url}/hook",
            {},
            secret="k",
            clock_seconds=lambda: 0.0,
            backoff=Backoff(base=2.0, jitter=False),
            sleep=waits.append,
        )
    assert outcome.ok and tries == 3 and waits == [2.0, 4.0]


BACKOFF_CASES = [(1, 1.0), (2, 2.0), (3, 4.0), (10, 512.0), (20, 3600.0)]


@pytest.mark.parametrize(("attempt", "ceiling"), BACKOFF_CASES)
def test_backoff_grows_exponentially_with_jitter_under_a_cap(attempt: int, ceiling: float) -> None:
    policy = Backoff(base=1.0, cap=3600.0)
    assert policy.delay(attempt, rng=lambda: 1.0) == ceiling
    assert policy.delay(attempt, rng=lambda: 0.0) == ceiling / 2


def test_rate_limiter_allows_the_burst_then_the_rate() -> None:
    bucket = RateLimiter(rate=2.0, burst=2.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert [bucket.take(0.5) for _ in range(2)] == [True, False]
    assert [bucket.take(10.0) for _ in range(3)] == [True, True, False]  # never more than the burst


def _self_signed(tmp_path: Path, host: str) -> tuple[Path, Path]:
    """A certificate for ``host`` and its key, as files."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.parametrize(("asked", "ok"), [("crm.test", True), ("other.test", False)])
def test_https_keeps_the_name_for_sni_and_certificate_checks_while_pinned(tmp_path: Path, asked: str, ok: bool) -> None:
    cert, key = _self_signed(tmp_path, "crm.test")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    trust = ssl.create_default_context(cafile=str(cert))
    with serve({"/hook": echo}, tls=server_tls) as peer:
        port = peer.base_url.rsplit(":", 1)[1]
        client = make_client(AddressPolicy(allow_private=True), resolver=lambda h, p: ["127.0.0.1"], verify=trust)
        outcome = post_signed(client, f"https://{asked}:{port}/hook", {}, secret="k", unix_seconds=0)
        client.close()
    # The connection went to 127.0.0.1, yet the certificate was checked against the URL's name.
    assert outcome.ok is ok
    if not ok:
        assert "certificate" in (outcome.error or "").lower() or "hostname" in (outcome.error or "").lower()
