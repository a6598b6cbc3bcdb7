"""HMAC-signed tokens for tracking links, open pixels and unsubscribe links.

A token is ``base64url(json payload) + "." + base64url(HMAC-SHA256)``, keyed by
the workspace secret and a purpose, so a click token cannot be replayed as an
unsubscribe token.  Anything forged or edited fails verification.

Signing runs for every link of every email, so the HMAC's inner and outer
SHA-256 states are prepared once per (secret, purpose) (``Key``), and callers
that know their payload's shape write the JSON themselves (``json_value``),
byte for byte what ``json.dumps(sort_keys=True)`` gives: the tokens are the
same as ever, and every token already sent still verifies.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from binascii import a2b_base64, b2a_base64
from json.encoder import encode_basestring_ascii
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


@functools.lru_cache(maxsize=64)
def key_for(secret: str, purpose: str) -> Key:
    """The prepared key for a secret and purpose (cached: signing runs per link, per recipient)."""
    return Key(secret, purpose)


def json_value(value: Any) -> str:
    """``json.dumps(value)`` for the scalars tokens carry (str, int, None), faster; others via json."""
    if value.__class__ is str:
        return encode_basestring_ascii(value)  # what json.dumps does with ensure_ascii (the default)
    if value is None:
        return "null"
    if value.__class__ is int:
        return int.__repr__(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def sign(secret: str, purpose: str, payload: dict[str, Any]) -> str:
    """A URL-safe token carrying ``payload``, signed for ``purpose``."""
    if not secret:
        raise AuthError("the workspace has no signing secret", hint="run `tailormail init` or set TAILORMAIL_SECRET")
    return key_for(secret, purpose).token(json.dumps(payload, separators=(",", ":"), sort_keys=True))


def verify(secret: str, purpose: str, token: str) -> dict[str, Any]:
    """The payload of a token signed for ``purpose``; raises BadToken otherwise."""
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
