"""HMAC-signed tokens for tracking links, open pixels and unsubscribe links.

A token is ``base64url(json payload) + "." + base64url(HMAC-SHA256)``, keyed by
the workspace secret and a purpose, so a click token cannot be replayed as an
unsubscribe token.  Anything forged or edited fails verification.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from typing import Any

from tailormail.errors import AuthError


class BadToken(AuthError):
    """A token that was forged, edited, or signed for another purpose."""

    code = "bad_token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=64)
def _key(secret: str, purpose: str) -> Any:
    """The HMAC state keyed for one purpose, prepared once (signing runs per link, per recipient)."""
    return hmac.new(hashlib.sha256(f"{purpose}:{secret}".encode()).digest(), digestmod=hashlib.sha256)


def _mac(secret: str, purpose: str, body: str) -> bytes:
    mac = _key(secret, purpose).copy()
    mac.update(body.encode("ascii"))
    return mac.digest()


def sign(secret: str, purpose: str, payload: dict[str, Any]) -> str:
    """A URL-safe token carrying ``payload``, signed for ``purpose``."""
    if not secret:
        raise AuthError("the workspace has no signing secret", hint="run `tailormail init` or set TAILORMAIL_SECRET")
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return f"{body}.{_b64(_mac(secret, purpose, body))}"


def verify(secret: str, purpose: str, token: str) -> dict[str, Any]:
    """The payload of a token signed for ``purpose``; raises BadToken otherwise."""
    body, _, signature = token.partition(".")
    try:
        # Compare the canonical text, so no alternative spelling of a valid MAC passes.
        valid = bool(secret) and hmac.compare_digest(signature, _b64(_mac(secret, purpose, body)))
        payload = json.loads(_unb64(body)) if valid else None
    except (ValueError, UnicodeDecodeError):
        valid, payload = False, None
    if not valid or not isinstance(payload, dict):
        raise BadToken("invalid or tampered token")
    return payload
