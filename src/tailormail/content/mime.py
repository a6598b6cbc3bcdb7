"""MIME assembly: multipart/alternative (text, then HTML), UTF-8, quoted-printable.

Written by hand rather than with ``email.message`` because it runs once per
recipient: the bodies are encoded with ``binascii.b2a_qp`` (C) and the headers
are built with the standard library's own encoders.  The result parses back
with the ``email`` package (tests check it).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime, formataddr

_CRLF = b"\r\n"


def message_id_for(key: str, domain: str) -> str:
    """The Message-ID for an idempotency key: the same key always gives the same id."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def _header_text(value: str) -> str:
    """A header value with line breaks removed (no header injection), encoded if not ASCII."""
    clean = " ".join(value.split())
    if clean.isascii() and "=?" not in clean:
        return clean
    return _encoded_words(clean)


def _encoded_words(text: str) -> str:
    """RFC 2047 base64 words of at most 45 UTF-8 bytes each (never splitting a character)."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        length = len(char.encode("utf-8"))
        if size + length > 45:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += length
    words.append("".join(chunk))
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words)


@functools.lru_cache(maxsize=256)
def _date(date: datetime) -> str:
    return format_datetime(date)  # a batch shares one date


@functools.lru_cache(maxsize=256)
def _sender(name: str, address: str) -> str:
    return _address(name, address)  # a batch shares one sender


def _address(name: str, address: str) -> str:
    return formataddr((" ".join(name.split()), "".join(address.split())), charset="utf-8")


_SOFT_BREAK = b"=\r\n"
QP_CACHE_SIZE = 50_000
"""Encoded pieces kept; bounds memory when pieces are per-person values."""
_qp_cache: dict[str, bytes] = {}
UNCACHED_LENGTH = 64
"""Printable ASCII pieces longer than this (signed links) are wrapped each time, not cached: they never repeat."""


def _plain_qp(text: str) -> bytes | None:
    """The QP of printable ASCII without "=" (a signed URL, a name): itself, wrapped; None for other text."""
    if text.isascii() and text.isprintable() and "=" not in text and text[-1:] != " ":
        # Only soft breaks are needed (a space before "=" is allowed: it is not at the line's end).
        raw = text.encode("ascii")
        size = len(raw)
        if size <= 75:
            return raw
        if size <= 225:  # a signed link: written out, no list to build
            if size <= 150:
                return b"".join((raw[:75], _SOFT_BREAK, raw[75:]))
            return b"".join((raw[:75], _SOFT_BREAK, raw[75:150], _SOFT_BREAK, raw[150:]))
        return _SOFT_BREAK.join([raw[i : i + 75] for i in range(0, size, 75)])
    return None


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends; the last line is at most 75 long, so a soft break can follow."""
    plain = _plain_qp(text)
    if plain is not None:
        return plain
    body = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True).replace(b"\n", _CRLF)
    if len(body) - (body.rfind(_CRLF) + 2) > 75:
        # b2a_qp ends lines at 76; the join's "=" would make 77. Move the last character
        # (or the "=XX" escape it belongs to) to a line of its own.
        cut = len(body) - 1
        for back in (1, 2):
            if body[cut - back] == 0x3D:  # "=" in QP output always starts an escape
                cut -= back
                break
        body = body[:cut] + _SOFT_BREAK + body[cut:]
    return body


def qp_pieces(pieces: list[str], links: dict[str, bytes] | None = None) -> bytes:
    """Quoted-printable of the pieces' concatenation, each piece encoded once per process.

    A soft line break (``=`` CRLF) decodes to nothing, so pieces can be encoded
    separately and joined with one: the template's static HTML (nearly all of
    it) is encoded on first use and reused for every recipient after that.
    Long plain pieces (signed links) are not kept; pass the same ``links`` dict
    for a message's parts to encode each link once for both.
    """
    return _SOFT_BREAK.join(_encoded(pieces, {} if links is None else links))


def qp_lines(text: str) -> bytes:
    """Quoted-printable of a plain-text body, line by line (lines repeat across recipients)."""
    return _CRLF.join(_encoded(text.split("\n"), {}))


def _encoded(pieces: list[str], links: dict[str, bytes]) -> list[bytes]:
    cache = _qp_cache
    out: list[bytes | None] = list(map(cache.get, pieces))  # static pieces: the same objects, hashed once
    index = -1
    try:
        while True:
            index = out.index(None, index + 1)  # found in C: most pieces are cached
            piece = pieces[index]
            if len(piece) > UNCACHED_LENGTH:
                found = links.get(piece)
                if found is not None:
                    out[index] = found
                    continue
            plain = _plain_qp(piece)
            if plain is not None and len(piece) > UNCACHED_LENGTH:
                out[index] = links[piece] = plain  # a per-person link: never seen in another mail, not kept
                continue
            if len(cache) >= QP_CACHE_SIZE:
                cache.clear()
            out[index] = cache[piece] = _qp(piece) if plain is None else plain
    except ValueError:
        pass
    return out  # type: ignore[return-value]


def assemble(
    *,
    sender: tuple[str, str],
    to: str,
    subject: str,
    text: str | bytes,
    html: str | bytes,
    message_id: str,
    date: datetime,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The complete message, CRLF line ends, ready for SMTP (bodies as text, or already encoded)."""
    boundary = "=_tm_" + message_id.strip("<>").split("@", 1)[0][:24]  # "=_" never occurs in QP text
    lines = [
        f"From: {_sender(*sender)}",
        f"To: {_address('', to)}",
        f"Subject: {_header_text(subject)}",
        f"Date: {_date(date)}",
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
    text_body = text if isinstance(text, bytes) else _qp(text)
    html_body = html if isinstance(html, bytes) else _qp(html)
    return b"".join([start, _CRLF, text_body, middle, html_body, f"\r\n--{boundary}--\r\n".encode("ascii")])
