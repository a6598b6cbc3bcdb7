"""Tracking URLs: click redirects, the open pixel and view-in-browser, each HMAC-signed.

A click token carries the email's idempotency key, the person, the link's id,
block and position, and the exact URL that was in the email: the redirect
goes only there, and editing any of it breaks the signature.

``Tracker`` is what sends use: it writes compact tokens (``signing.sign_compact``),
with each link's section and each person's section encoded once and the HMAC's
state after the person's section shared by all their links, because it runs for
every link of every email.  ``click_url`` and friends write the JSON format,
which ``verify`` accepts as ever.
"""

from __future__ import annotations

from binascii import b2a_base64
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tailormail.track.signing import MAC_BYTES, Key, b64, compact_key, section, sign

CLICK, OPEN, VIEW, UNSUBSCRIBE = "click", "open", "view", "unsubscribe"
CACHE_SIZE = 20_000
"""Links and tagged URLs remembered per tracker; bounds memory when URLs are per person."""


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


class Tracker:
    """Signed links for sends: click signers and each person's system links, as compact tokens."""

    def __init__(self, base: str, secret: str, utm: dict[str, str] | None = None) -> None:
        self.base = base.rstrip("/")
        self.utm = dict(utm or {})
        self._secret = secret  # keys are prepared on first use: a workspace without a secret fails there
        # Shared by every signer this tracker makes (a journey makes one per send): each link's
        # section (bytes, and its base64 text) and each URL with its UTM tags.
        self._sections: dict[tuple[str | None, int, int, str], tuple[bytes, str]] = {}
        self._tagged: dict[str, str] = {}
        self._system_keys: tuple[Key, Key, Key] | None = None

    def signer(self, profile_of: dict[str, int | None]) -> Callable[[str, Any, str], str]:
        """A content LinkSigner: (message key, slot, url) -> tracked URL, with UTM tags added.

        Carries what ``click_url`` carries, as a compact token.
        """
        sections, tagged, utm = self._sections, self._tagged, self.utm
        key, prefix = compact_key(self._secret, CLICK), f"{self.base}/c/"
        urlsafe = _URLSAFE
        # (message key, prefix + the person's section's base64, HMAC state after that section)
        last: list[Any] = [None, "", None]

        def signed(message_key: str, slot: Slot, url: str) -> str:
            link = sections.get((slot.block, slot.position, slot.id, url))
            if link is None:
                target = tagged.get(url)
                if target is None:
                    if len(tagged) >= CACHE_SIZE:
                        tagged.clear()
                    target = tagged[url] = with_utm(url, utm)
                if len(sections) >= CACHE_SIZE:
                    sections.clear()
                data = section([slot.block, slot.position, slot.id, target], first=False)
                link = sections[(slot.block, slot.position, slot.id, url)] = (data, b64(data))
            if last[0] != message_key:
                person = section([message_key, profile_of.get(message_key)], first=True)
                last[0], last[1], last[2] = message_key, prefix + b64(person), key.inner_after(person)
            mac = b2a_base64(key.mac_after(last[2], link[0])[:MAC_BYTES], newline=False)
            return last[1] + link[1] + mac[:_MAC_CHARS].translate(urlsafe).decode("ascii")

        return signed

    def links_for(self, recipient: Any) -> dict[str, str]:
        """The system links of one person's email: unsubscribe, preferences, view in browser, open pixel."""
        key, pid = recipient.message_key, recipient.profile_id
        keys = self._system_keys
        if keys is None:
            secret = self._secret
            keys = self._system_keys = (
                compact_key(secret, UNSUBSCRIBE), compact_key(secret, VIEW), compact_key(secret, OPEN)
            )  # fmt: skip
        unsubscribe_key, view_key, open_key = keys
        # The same tokens as sign_compact, written from their sections (this runs for every mail).
        unsubscribe = unsubscribe_key.compact(section([recipient.email, None, pid], first=True))
        view = view_key.compact(section([key], first=True))
        pixel = open_key.compact(section([key, pid], first=True))
        return {
            "unsubscribe": f"{self.base}/u/{unsubscribe}",
            "preferences": f"{self.base}/p/{unsubscribe}",
            "view_in_browser": f"{self.base}/v/{view}",
            "open_pixel": f"{self.base}/o/{pixel}.gif",
        }


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_MAC_CHARS = 22
"""base64 characters of a 16-byte MAC (its last two, "==", are padding)."""


def link_signer(base: str, secret: str, profile_of: dict[str, int | None], utm: dict[str, str]):  # type: ignore[no-untyped-def]
    """A content LinkSigner: (message key, slot, url) -> tracked URL, with UTM tags added."""
    return Tracker(base, secret, utm).signer(profile_of)
