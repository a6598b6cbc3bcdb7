"""Telling people from machines: proxy prefetches and link scanners.

Apple Mail Privacy Protection fetches every image through Apple's proxies
when mail arrives, and security gateways follow every link seconds after
delivery.  Counting those as opens and clicks would make every email look
like a success, so hits are flagged and left out of rates by default.
"""

from __future__ import annotations

import ipaddress

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


def automated_reason(
    user_agent: str | None, address: str | None, seconds_since_delivery: float | None, threshold_seconds: float
) -> str | None:
    """Why a hit looks automated (None: it looks like a person)."""
    agent = (user_agent or "").strip().lower()
    if _apple_proxy(address) or agent == "mozilla/5.0":
        return "apple_privacy_proxy"
    if any(fragment in agent for fragment in SCANNER_AGENTS):
        return "scanner_user_agent"
    if seconds_since_delivery is not None and 0 <= seconds_since_delivery < threshold_seconds:
        return "too_soon_after_delivery"
    if not agent:
        return "no_user_agent"
    return None


def _apple_proxy(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in net for net in APPLE_PROXY_NETWORKS)
