"""The outbound HTTP client: signed bodies, address checks, timeouts, retries, rate limits.

Used by sync destinations, sync alerts and the journeys' webhook node.  Every
request goes through ``GuardedTransport``: it resolves the host itself, refuses
private, loopback, link-local, multicast and reserved addresses unless the
configuration allows them, and then connects to the very address it checked
(the URL's host is replaced by the IP; the Host header and TLS SNI keep the
name), so a DNS answer that changes between check and connect (DNS rebinding)
cannot reach an address that was refused.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tailormail.errors import ConfigError, TailormailError

Resolver = Callable[[str, int], list[str]]
"""Host and port to the IP addresses they resolve to."""

SIGNATURE_HEADER = "X-Tailormail-Signature"
"""``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, Stripe style, so receivers can refuse replays."""

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP answers worth trying again; any other 4xx is the request's own fault."""


class ForbiddenAddress(TailormailError):
    """The URL's host resolves to an address outbound requests may not reach."""

    code = "forbidden_address"


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True when the address is a global unicast one (not private, loopback, link-local...)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outbound requests may reach."""

    allow_private: bool = False
    """True: also private, loopback and link-local (a CRM on the LAN; tests on loopback)."""
    allowed_networks: tuple[str, ...] = ()
    """CIDRs allowed even though they are not public (narrower than allow_private)."""

    def check(self, host: str, addresses: Sequence[str]) -> str:
        """The first address to connect to; raise ForbiddenAddress if any is refused."""
        if not addresses:
            raise ForbiddenAddress(f"{host} resolves to no address")
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self._allowed(address):
                raise ForbiddenAddress(
                    f"{host} resolves to {address}, a non-public address",
                    hint="set allow_private = true (or allowed_networks) for this destination if it is intended",
                )
        return addresses[0]

    def _allowed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if is_public(address):
            return True
        if self.allow_private and not address.is_multicast and not address.is_unspecified:
            return True
        return any(address in ipaddress.ip_network(net, strict=False) for net in self.allowed_networks)


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that checks the resolved address and connects to exactly it."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver = system_resolver, **options: Any) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = httpx.HTTPTransport(**options)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Resolve, check, pin the address, then send."""
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        address = self.policy.check(host, self.resolver(host, port))
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        request.headers.setdefault("Host", request.url.netloc.decode("ascii"))
        request.url = request.url.copy_with(host=address)
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Close pooled connections."""
        self.inner.close()


def make_client(
    policy: AddressPolicy,
    *,
    timeout: float = 10.0,
    resolver: Resolver = system_resolver,
    headers: dict[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Client:
    """An httpx client whose every request (redirects included) passes the address policy."""
    return httpx.Client(
        transport=GuardedTransport(policy, resolver, verify=verify),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        headers={"User-Agent": "tailormail-sync/0.1", **(headers or {})},
    )


def sign_body(secret: str, body: bytes, unix_seconds: int) -> str:
    """The signature header value for a body sent at ``unix_seconds``."""
    mac = hmac.new(secret.encode("utf-8"), f"{unix_seconds}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={unix_seconds},v1={mac}"


def verify_signature(secret: str, body: bytes, header: str, now_seconds: int, tolerance: int = 300) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is at most ``tolerance`` seconds old."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        sent = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now_seconds - sent) > tolerance:
        return False
    return hmac.compare_digest(sign_body(secret, body, sent), f"t={sent},v1={parts.get('v1', '')}")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits up to base * 2**(n-1), capped."""

    base: float = 1.0
    cap: float = 3600.0
    jitter: bool = True

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry)."""
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        # Jitter spreads retries of many failed calls so they do not return in a herd.
        return ceiling * (0.5 + rng() / 2) if self.jitter else ceiling


@dataclass
class RateLimiter:
    """A token bucket: at most ``rate`` requests a second, bursts up to ``burst``."""

    rate: float
    burst: float = 1.0
    tokens: float = field(default=-1.0)
    updated: float = 0.0

    def take(self, now_seconds: float) -> bool:
        """Spend one token if there is one at ``now_seconds``."""
        if self.tokens < 0:
            self.tokens, self.updated = max(self.burst, 1.0), now_seconds
        self.tokens = min(max(self.burst, 1.0), self.tokens + (now_seconds - self.updated) * self.rate)
        self.updated = now_seconds
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class Outcome:
    """What one POST did."""

    ok: bool
    status: int | None
    error: str | None
    retryable: bool


def post_signed(
    client: httpx.Client,
    url: str,
    payload: Any,
    *,
    secret: str,
    unix_seconds: int,
    headers: dict[str, str] | None = None,
) -> Outcome:
    """POST ``payload`` as JSON with an HMAC signature; never raises for network trouble."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode("utf-8")
    sent = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(secret, body, unix_seconds)}
    try:
        response = client.post(url, content=body, headers={**sent, **(headers or {})})
    except ForbiddenAddress as exc:
        return Outcome(False, None, exc.message, retryable=False)
    except httpx.HTTPError as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}", retryable=True)
    if response.is_success:
        return Outcome(True, response.status_code, None, retryable=False)
    detail = f"HTTP {response.status_code}: {response.text[:200]}"
    return Outcome(False, response.status_code, detail, retryable=response.status_code in RETRYABLE_STATUS)


def post_with_retries(
    client: httpx.Client,
    url: str,
    payload: Any,
    *,
    secret: str,
    clock_seconds: Callable[[], float],
    attempts: int = 5,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
    headers: dict[str, str] | None = None,
) -> tuple[Outcome, int]:
    """POST with in-call retries (injectable ``sleep``); return the last outcome and tries made."""
    if attempts < 1:
        raise ConfigError("attempts must be at least 1")
    backoff = backoff or Backoff()
    outcome = Outcome(False, None, "not attempted", True)
    for attempt in range(1, attempts + 1):
        outcome = post_signed(client, url, payload, secret=secret, unix_seconds=int(clock_seconds()), headers=headers)
        if outcome.ok or not outcome.retryable or attempt == attempts:
            return outcome, attempt
        sleep(backoff.delay(attempt))
    return outcome, attempts
