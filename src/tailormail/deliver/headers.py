"""Headers added at send time: Message-ID, one-click unsubscribe (RFC 8058), DKIM.

They are prepended to the finished MIME bytes, so the content that was
rendered and stored is sent byte for byte below them.  DKIM signs last, over
everything above, including List-Unsubscribe, so no relay can swap the link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import dkim

from tailormail.deliver.outbox import head_length
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
