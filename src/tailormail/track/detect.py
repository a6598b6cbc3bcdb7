"""Telling people from machines: proxy prefetches and link scanners.

Apple Mail Privacy Protection fetches every image through Apple's proxies
when mail arrives, and security gateways follow every link seconds after
delivery.  Counting those as opens and clicks would make every email look
like a success, so hits are flagged and left out of rates by default.
"""

from __future__ import annotations

import ipaddress
import re
import socket

SCANNER_AGENTS = (
    "barracuda",
    "proofpoint",
    "mimecast",
    "symantec",
    "trendmicro",
    "forcepoint",
    "cisco",
    "ironport",
    "safelinks",
    "microsoft office protection",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
    "headlesschrome",
    "bot",
    "spider",
    "crawler",
    "scanner",
)
"""Lower-case fragments of User-Agents that security gateways and scripts send."""

APPLE_PROXY_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
"""Apple's own network, where Mail Privacy Protection's prefetches come from."""

# Runs for every hit: one regex search instead of a loop over fragments, and IPv4 networks as
# (address, mask) integers, so a dotted address is checked without building ipaddress objects.
_SCANNER = re.compile("|".join(re.escape(fragment) for fragment in SCANNER_AGENTS))
_V4_NETWORKS = tuple(
    (int(n.network_address), int(n.netmask)) for n in APPLE_PROXY_NETWORKS if isinstance(n, ipaddress.IPv4Network)
)


def automated_reason(
    user_agent: str | None, address: str | None, seconds_since_delivery: float | None, threshold_seconds: float
) -> str | None:
    """Why a hit looks automated (None: it looks like a person)."""
    agent = (user_agent or "").strip().lower()
    if _apple_proxy(address) or agent == "mozilla/5.0":
        return "apple_privacy_proxy"
    if _SCANNER.search(agent):
        return "scanner_user_agent"
    if seconds_since_delivery is not None and 0 <= seconds_since_delivery < threshold_seconds:
        return "too_soon_after_delivery"
    if not agent:
        return "no_user_agent"
    return None


def _apple_proxy(address: str | None) -> bool:
    try:  # the common case: a strict dotted IPv4 address
        number = int.from_bytes(socket.inet_pton(socket.AF_INET, address or ""))
        return any(number & mask == net for net, mask in _V4_NETWORKS)
    except (OSError, ValueError):  # not dotted IPv4 (IPv6, a name, junk): the general parser decides
        pass
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in net for net in APPLE_PROXY_NETWORKS)
