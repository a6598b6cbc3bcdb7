"""Headers added on the way out: Message-ID, one-click unsubscribe (RFC 8058), DKIM.

They are prepended to the finished MIME bytes, so the content that was
rendered and stored is sent byte for byte below them.  Journeys and campaigns
add Message-ID and List-Unsubscribe when they queue the email (``Finisher``),
so the send loop does no per-message header or HMAC work; mail queued without
them gets them at send time.  DKIM signs last, at send time, over everything
above, including List-Unsubscribe, so no relay can swap the link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import dkim

from tailormail.deliver.outbox import domain_of, head_length
from tailormail.track.signing import sign

UNSUBSCRIBE_PURPOSE = "unsubscribe"
DKIM_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
"""Signed headers; a listed header that is absent is signed as absent, so none can be added later."""

FINISHED = b"List-Unsubscribe: <"
"""How a marketing message finished when it was queued begins (nothing else puts this header first)."""

_LINE_END = re.compile(rb"\r?\n")
_HAS_MESSAGE_ID = re.compile(rb"(?im)^message-id:")


@dataclass(frozen=True)
class Signer:
    """A DKIM private key with its selector and domain."""

    key: bytes
    selector: str
    domain: str


def unsubscribe_token(secret: str, address: str, profile_id: int | None, outbox_id: int) -> str:
    """The signed token of an unsubscribe link: who, and which email it came from."""
    payload: dict[str, Any] = {"email": address, "profile_id": profile_id, "outbox_id": outbox_id}
    return sign(secret, UNSUBSCRIBE_PURPOSE, payload)


def unsubscribe_headers(base_url: str, domain: str, token: str) -> list[tuple[str, str]]:
    """List-Unsubscribe (HTTPS and mailto) and List-Unsubscribe-Post for one-click (RFC 8058)."""
    url = f"{base_url.rstrip('/')}/u/{token}"
    mailto = f"mailto:unsubscribe@{domain}?subject={token}"
    return [
        ("List-Unsubscribe", f"<{url}>,\r\n <{mailto}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]


def finish(row: dict[str, Any], outbox_id: int, *, secret: str, base_url: str, domain: str = "") -> bytes:
    """The wire bytes before DKIM: CRLF, a Message-ID if missing, signed List-Unsubscribe on marketing.

    ``row`` is an outbox row (mime, message_id, kind, recipient, profile_id,
    sender); ``domain`` defaults to the sender's, for the unsubscribe mailto.
    """
    mime = with_crlf(row["mime"])
    headers: list[tuple[str, str]] = []
    if row["kind"] == "marketing":
        token = unsubscribe_token(secret, row["recipient"], row["profile_id"], outbox_id)
        headers += unsubscribe_headers(base_url, domain or domain_of(row["sender"]), token)
    if not has_message_id(mime):
        headers.append(("Message-ID", row["message_id"]))
    return prepend_headers(mime, headers)


def is_finished(row: dict[str, Any]) -> bool:
    """Whether an outbox row's bytes were finished when it was queued (marketing mail only)."""
    return row["kind"] == "marketing" and bytes(row["mime"][: len(FINISHED)]) == FINISHED


@dataclass(frozen=True)
class Finisher:
    """Finishes emails as they are queued, so the send loop only sends them (see ``finish``)."""

    secret: str
    base_url: str
    domain: str = ""

    def __call__(self, row: dict[str, Any], outbox_id: int) -> bytes:
        """The row's finished bytes; its own bytes when they cannot be finished (the sender fails it then)."""
        try:
            return finish(row, outbox_id, secret=self.secret, base_url=self.base_url, domain=self.domain)
        except (ValueError, UnicodeError):  # e.g. a header that would not encode: fail that one mail, not the step
            return bytes(row["mime"])


def with_crlf(mime: bytes) -> bytes:
    """The message with every line ending as CRLF (what SMTP sends and DKIM signs)."""
    if mime.count(b"\n") == mime.count(b"\r\n"):  # already CRLF: skip the copy
        return mime
    return _LINE_END.sub(b"\r\n", mime)


def has_message_id(mime: bytes) -> bool:
    """Whether the header block already carries a Message-ID."""
    return bool(_HAS_MESSAGE_ID.search(mime, 0, head_length(mime)))


def prepend_headers(mime: bytes, headers: list[tuple[str, str]]) -> bytes:
    """The message with ``headers`` added on top (values must not carry bare line breaks)."""
    for name, value in headers:
        if "\n" in value.replace("\r\n ", "") or "\r" in value.replace("\r\n ", ""):
            raise ValueError(f"header {name} would inject a line break")
    top = b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in headers)
    return top + mime


def dkim_sign(mime: bytes, signer: Signer) -> bytes:
    """The message with a DKIM-Signature header on top (relaxed/simple, rsa-sha256)."""
    signature = dkim.sign(
        mime,
        signer.selector.encode("ascii"),
        signer.domain.encode("ascii"),
        signer.key,
        include_headers=[h.encode("ascii") for h in DKIM_HEADERS],
    )
    return bytes(signature) + mime
