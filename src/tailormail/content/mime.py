"""MIME assembly: multipart/alternative (text, then HTML), UTF-8, quoted-printable.

Written by hand rather than with ``email.message`` because it runs once per
recipient: the bodies are encoded with ``binascii.b2a_qp`` (C) and the headers
are built with the standard library's own encoders.  The result parses back
with the ``email`` package (tests check it).
"""

from __future__ import annotations

import binascii
import hashlib
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr

_CRLF = b"\r\n"


def message_id_for(key: str, domain: str) -> str:
    """The Message-ID for an idempotency key: the same key always gives the same id."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def _header_text(value: str) -> str:
    """A header value with line breaks removed (no header injection), encoded if not ASCII."""
    clean = " ".join(value.split())
    if clean.isascii():
        return Header(clean, "us-ascii", maxlinelen=998).encode()
    return Header(clean, "utf-8").encode(linesep="\r\n")


def _address(name: str, address: str) -> str:
    return formataddr((" ".join(name.split()), "".join(address.split())), charset="utf-8")


def _qp(text: str) -> bytes:
    body = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return body.replace(b"\n", _CRLF)


def assemble(
    *,
    sender: tuple[str, str],
    to: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    date: datetime,
    headers: dict[str, str] | None = None,
) -> bytes:
    """The complete message, CRLF line ends, ready for SMTP."""
    boundary = "=_tm_" + message_id.strip("<>").split("@", 1)[0][:24]  # "=_" never occurs in QP text
    lines = [
        f"From: {_address(*sender)}",
        f"To: {_address('', to)}",
        f"Subject: {_header_text(subject)}",
        f"Date: {format_datetime(date)}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        *(f"{k}: {_header_text(v)}" for k, v in (headers or {}).items()),
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
    ]
    start = "\r\n".join(lines).encode("utf-8")
    middle = (
        f'\r\n--{boundary}\r\nContent-Type: text/html; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii")
    return b"".join([start, _CRLF, _qp(text), middle, _qp(html), f"\r\n--{boundary}--\r\n".encode("ascii")])
