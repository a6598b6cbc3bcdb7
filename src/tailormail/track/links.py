"""Tracking URLs: click redirects, the open pixel and view-in-browser, each HMAC-signed.

A click token carries the email's idempotency key, the person, the link's id,
block and position, and the exact URL that was in the email: the redirect
goes only there, and editing any of it breaks the signature.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tailormail.track.signing import sign

CLICK, OPEN, VIEW = "click", "open", "view"


class Slot(Protocol):
    """What a tracked link knows about where it sits (content's LinkSlot has these)."""

    id: int
    block: str | None
    position: int


def with_utm(url: str, utm: dict[str, str]) -> str:
    """``url`` with UTM parameters added (existing ones are kept)."""
    if not utm:
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key, value in utm.items():
        query.setdefault(key, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def click_url(base: str, secret: str, key: str, profile_id: int | None, slot: Slot, url: str) -> str:
    """The redirect URL that stands for ``url`` in one person's email."""
    payload: dict[str, Any] = {"k": key, "p": profile_id, "l": slot.id, "b": slot.block, "i": slot.position, "u": url}
    return f"{base.rstrip('/')}/c/{sign(secret, CLICK, payload)}"


def open_url(base: str, secret: str, key: str, profile_id: int | None) -> str:
    """The 1x1 pixel URL of one person's email."""
    return f"{base.rstrip('/')}/o/{sign(secret, OPEN, {'k': key, 'p': profile_id})}.gif"


def view_url(base: str, secret: str, key: str) -> str:
    """The view-in-browser URL of one person's email."""
    return f"{base.rstrip('/')}/v/{sign(secret, VIEW, {'k': key})}"


def link_signer(base: str, secret: str, profile_of: dict[str, int | None], utm: dict[str, str]):  # type: ignore[no-untyped-def]
    """A content LinkSigner: (message key, slot, url) -> tracked URL, with UTM tags added."""

    def signer(key: str, slot: Slot, url: str) -> str:
        return click_url(base, secret, key, profile_of.get(key), slot, with_utm(url, utm))

    return signer
