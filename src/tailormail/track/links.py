"""Tracking URLs: click redirects, the open pixel and view-in-browser, each HMAC-signed.

A click token carries the email's idempotency key, the person, the link's id,
block and position, and the exact URL that was in the email: the redirect
goes only there, and editing any of it breaks the signature.

``Tracker`` is what sends use: it prepares the keys once and writes each
payload's JSON directly (the same bytes as ``signing.sign``), because it runs
for every link of every email.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tailormail.track.signing import json_value as _j
from tailormail.track.signing import key_for, sign

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
    """Signed links for sends: click signers and each person's system links, keys prepared once."""

    def __init__(self, base: str, secret: str, utm: dict[str, str] | None = None) -> None:
        self.base = base.rstrip("/")
        self.utm = dict(utm or {})
        self._secret = secret  # keys are prepared on first use: a workspace without a secret fails there
        # Shared by every signer this tracker makes (a journey makes one per send): the JSON
        # around the two per-person values for each link, and each URL with its UTM tags.
        self._around: dict[tuple[str | None, int, int, str], tuple[str, str, str]] = {}
        self._tagged: dict[str, str] = {}

    def signer(self, profile_of: dict[str, int | None]) -> Callable[[str, Any, str], str]:
        """A content LinkSigner: (message key, slot, url) -> tracked URL, with UTM tags added.

        The same tokens as ``click_url`` (keys in sorted order, JSON as ``json.dumps``).
        """
        around, tagged, utm = self._around, self._tagged, self.utm
        token, prefix = key_for(self._secret, CLICK).token, f"{self.base}/c/"
        last: list[Any] = [None, ""]  # (message key, its JSON values): links come person by person

        def signed(key: str, slot: Slot, url: str) -> str:
            parts = around.get((slot.block, slot.position, slot.id, url))
            if parts is None:
                target = tagged.get(url)
                if target is None:
                    if len(tagged) >= CACHE_SIZE:
                        tagged.clear()
                    target = tagged[url] = _j(with_utm(url, utm))
                if len(around) >= CACHE_SIZE:
                    around.clear()
                parts = around[(slot.block, slot.position, slot.id, url)] = (
                    f'{{"b":{_j(slot.block)},"i":{_j(slot.position)},"k":',
                    f',"l":{_j(slot.id)},"p":',
                    f',"u":{target}}}',
                )
            if last[0] != key:
                last[0], last[1] = key, (_j(key), _j(profile_of.get(key)))
            key_json, profile_json = last[1]
            return prefix + token(parts[0] + key_json + parts[1] + profile_json + parts[2])

        return signed

    def links_for(self, recipient: Any) -> dict[str, str]:
        """The system links of one person's email: unsubscribe, preferences, view in browser, open pixel."""
        key, pid = _j(recipient.message_key), _j(recipient.profile_id)
        email = _j(recipient.email)
        unsubscribe = key_for(self._secret, UNSUBSCRIBE).token(
            f'{{"email":{email},"outbox_id":null,"profile_id":{pid}}}'
        )
        view = key_for(self._secret, VIEW).token(f'{{"k":{key}}}')
        pixel = key_for(self._secret, OPEN).token(f'{{"k":{key},"p":{pid}}}')
        return {
            "unsubscribe": f"{self.base}/u/{unsubscribe}",
            "preferences": f"{self.base}/p/{unsubscribe}",
            "view_in_browser": f"{self.base}/v/{view}",
            "open_pixel": f"{self.base}/o/{pixel}.gif",
        }


def link_signer(base: str, secret: str, profile_of: dict[str, int | None], utm: dict[str, str]):  # type: ignore[no-untyped-def]
    """A content LinkSigner: (message key, slot, url) -> tracked URL, with UTM tags added."""
    return Tracker(base, secret, utm).signer(profile_of)
