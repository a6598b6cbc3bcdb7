"""HMAC-signed tokens for tracking links, open pixels and unsubscribe links.

Two formats, both keyed by the workspace secret and a purpose, so a click
token cannot be replayed as an unsubscribe token; anything forged or edited
fails verification, and ``verify`` accepts both (mail already sent keeps working):

- JSON (``sign``): ``base64url(json payload) + "." + base64url(HMAC-SHA256)``.
- compact (``sign_compact``, what sends write since 2026-11-29): one base64url
  string, no ".", of ``0x02, fields, HMAC-SHA256 truncated to 128 bits``; the
  fields are the purpose's payload values in a fixed order (``FIELDS``), each
  a tagged length and its bytes.  Shorter (a click token ~150 characters
  instead of ~215, the system links' under half), so each link costs less to
  sign, to hash and to encode into the mail.  Fields come in sections, each
  padded with zero bytes to a multiple of 3 bytes, so a section's base64 text
  can be made once and reused (the person's in every link of their mail, the
  link's for every person).

Signing runs for every link of every email, so the HMAC's inner and outer
SHA-256 states are prepared once per (secret, purpose) (``Key``), and the
state after a shared prefix can be reused (``Key.inner_after``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from binascii import a2b_base64, b2a_base64
from collections.abc import Sequence
from typing import Any

from tailormail.errors import AuthError

_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


class BadToken(AuthError):
    """A token that was forged, edited, or signed for another purpose."""

    code = "bad_token"


def _b64(data: bytes) -> str:
    return b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    # base64.urlsafe_b64decode, without its argument checks (runs for every tracking hit)
    return a2b_base64((text + "=" * (-len(text) % 4)).encode("ascii").translate(_FROM_URLSAFE))


class Key:
    """HMAC-SHA256 keyed for one secret and purpose, its two SHA-256 states prepared once (RFC 2104)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: str, purpose: str) -> None:
        if not secret:
            raise AuthError(
                "the workspace has no signing secret", hint="run `tailormail init` or set TAILORMAIL_SECRET"
            )
        key = hashlib.sha256(f"{purpose}:{secret}".encode()).digest().ljust(64, b"\0")
        # hmac.HMAC.copy() costs more than the hash itself; copying two hashlib states does not.
        self._inner = hashlib.sha256(key.translate(_INNER_PAD))
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data``."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def token(self, payload_json: str) -> str:
        """The token for a payload already written as JSON (ASCII, as ``json.dumps`` writes it)."""
        body = b2a_base64(payload_json.encode("ascii"), newline=False).translate(_URLSAFE).rstrip(b"=")
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        mac = b2a_base64(outer.digest(), newline=False).translate(_URLSAFE).rstrip(b"=")
        return (body + b"." + mac).decode("ascii")

    def compact(self, data: bytes) -> str:
        """The compact token of ``data`` (its sections, padded): data and truncated MAC, base64url."""
        return _b64(data + self.mac(data)[:MAC_BYTES])

    def inner_after(self, data: bytes) -> Any:
        """The inner hash state after ``data``: a prefix shared by many MACs (``mac_after`` finishes one)."""
        inner = self._inner.copy()
        inner.update(data)
        return inner

    def mac_after(self, inner_state: Any, data: bytes) -> bytes:
        """HMAC-SHA256 of the prefix hashed into ``inner_state`` followed by ``data``."""
        inner = inner_state.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@functools.lru_cache(maxsize=64)
def key_for(secret: str, purpose: str) -> Key:
    """The prepared key for a secret and purpose (cached: signing runs per link, per recipient)."""
    return Key(secret, purpose)


def sign(secret: str, purpose: str, payload: dict[str, Any]) -> str:
    """A URL-safe token carrying ``payload``, signed for ``purpose``."""
    if not secret:
        raise AuthError("the workspace has no signing secret", hint="run `tailormail init` or set TAILORMAIL_SECRET")
    return key_for(secret, purpose).token(json.dumps(payload, separators=(",", ":"), sort_keys=True))


# --- the compact format -----------------------------------------------------------

COMPACT = 2
"""The compact format's version byte (the first byte; a JSON token's body starts with "e")."""
MAC_BYTES = 16
FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "click": (("k", "p"), ("b", "i", "l", "u")),  # the person's section, then the link's
    "open": (("k", "p"),),
    "view": (("k",),),
    "unsubscribe": (("email", "outbox_id", "profile_id"),),
}
"""Each purpose's payload keys, in sections, in the order the compact format writes them."""

_NONE, _INT, _STR, _HTTPS, _HTTP = 0, 1, 2, 3, 4
_PREFIXES = ((_HTTPS, "https://"), (_HTTP, "http://"))
_BYTE = [bytes((n,)) for n in range(0x80)]  # a URL's scheme is one tag, not 7-8 bytes


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def pack(values: Sequence[str | int | None]) -> bytes:
    """The compact encoding of values (str, int or None; a TypeError for others), unpadded."""
    out = []
    for value in values:
        kind = value.__class__
        if value is None:
            out.append(b"\0")
            continue
        if kind is int:
            tag, data = _INT, int.__repr__(value).encode("ascii")  # type: ignore[arg-type]
        elif kind is str:
            tag, text = _STR, value
            for prefix_tag, prefix in _PREFIXES:
                if text.startswith(prefix):  # type: ignore[union-attr]
                    tag, text = prefix_tag, text[len(prefix) :]  # type: ignore[index]
                    break
            data = text.encode("utf-8")  # type: ignore[union-attr]
        else:
            raise TypeError(f"a compact token holds str, int or None, not {kind.__name__}")
        header = len(data) << 3 | tag
        out.append(_BYTE[header] if header < 0x80 else _varint(header))  # short fields: one byte, no call
        out.append(data)
    return b"".join(out)


def section(values: Sequence[str | int | None], *, first: bool) -> bytes:
    """One padded section (the first starts with the version byte): its base64 stands on its own."""
    data = (bytes([COMPACT]) if first else b"") + pack(values)
    return data + b"\0" * (-len(data) % 3)


def unpack(data: bytes, start: int, count: int) -> tuple[list[str | int | None], int]:
    """``count`` values read from ``data`` at ``start``, and where they end (ValueError if malformed)."""
    values: list[str | int | None] = []
    at = start
    for _ in range(count):
        header = shift = 0
        while True:
            byte = data[at]  # an IndexError past the end: the caller treats it as malformed
            at += 1
            header |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        tag, length = header & 7, header >> 3
        raw = data[at : at + length]
        if len(raw) != length:
            raise ValueError("truncated field")
        at += length
        if tag == _NONE and length == 0:
            values.append(None)
        elif tag == _INT:
            values.append(int(raw.decode("ascii")))
        elif tag == _STR:
            values.append(raw.decode("utf-8"))
        elif tag in (_HTTPS, _HTTP):
            values.append(("https://" if tag == _HTTPS else "http://") + raw.decode("utf-8"))
        else:
            raise ValueError(f"unknown field tag {tag}")
    return values, at


def compact_key(secret: str, purpose: str) -> Key:
    """The key of compact tokens for ``purpose`` (not the JSON tokens' key: the formats never mix)."""
    return key_for(secret, f"{purpose}/compact")


def b64(data: bytes) -> str:
    """base64url without padding (a whole section's: its length is a multiple of 3)."""
    return _b64(data)


def sign_compact(secret: str, purpose: str, payload: dict[str, Any]) -> str:
    """A compact token carrying ``payload`` (the keys of ``FIELDS[purpose]``), signed for ``purpose``."""
    sections = FIELDS[purpose]
    data = b"".join(section([payload[k] for k in keys], first=i == 0) for i, keys in enumerate(sections))
    return compact_key(secret, purpose).compact(data)


def _verify_compact(secret: str, purpose: str, token: str) -> dict[str, Any] | None:
    sections = FIELDS.get(purpose)
    data = _unb64(token)
    if sections is None or len(data) <= MAC_BYTES or data[0] != COMPACT or _b64(data) != token:
        return None  # the last test: one spelling per token (base64 decoding forgives some)
    signed, mac = data[:-MAC_BYTES], data[-MAC_BYTES:]
    if not hmac.compare_digest(mac, compact_key(secret, purpose).mac(signed)[:MAC_BYTES]):
        return None
    payload: dict[str, Any] = {}
    at = 1
    for keys in sections:
        values, at = unpack(signed, at, len(keys))
        payload.update(zip(keys, values, strict=True))
        if any(signed[at : at + (-at % 3)]):
            return None
        at += -at % 3
    return payload if at == len(signed) else None


def verify(secret: str, purpose: str, token: str) -> dict[str, Any]:
    """The payload of a token signed for ``purpose`` (either format); raises BadToken otherwise."""
    if "." not in token:
        try:
            compact = _verify_compact(secret, purpose, token) if secret else None
        except (ValueError, IndexError):  # UnicodeError is a ValueError
            compact = None
        if compact is None:
            raise BadToken("invalid or tampered token")
        return compact
    body, _, signature = token.partition(".")
    try:
        # Compare the canonical text, so no alternative spelling of a valid MAC passes.
        valid = bool(secret) and hmac.compare_digest(
            signature, _b64(key_for(secret, purpose).mac(body.encode("ascii")))
        )
        payload = json.loads(_unb64(body).decode("utf-8")) if valid else None
    except (ValueError, UnicodeDecodeError):
        valid, payload = False, None
    if not valid or not isinstance(payload, dict):
        raise BadToken("invalid or tampered token")
    return payload
