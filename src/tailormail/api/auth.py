"""API key authentication: Basic (Segment style), Bearer, or writeKey in the body."""

from __future__ import annotations

import base64

from fastapi import Request

from tailormail.runtime import Runtime
from tailormail.store.keys import ApiKey, authenticate


def key_from_headers(request: Request) -> str | None:
    """The API key sent in the Authorization header, if any."""
    return key_from_authorization(request.headers.get("authorization", ""))


def key_from_authorization(header: str) -> str | None:
    """The API key in an Authorization header value (Basic user name or Bearer token), if any."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return None


def require(runtime: Runtime, request: Request, scope: str, body_key: str | None = None) -> ApiKey:
    """Authenticate the request's key for ``scope`` (raises AuthError/ScopeError)."""
    return require_key(runtime, key_from_headers(request) or body_key, scope)


def require_key(runtime: Runtime, key: str | None, scope: str) -> ApiKey:
    """Authenticate a key for ``scope`` (raises AuthError/ScopeError)."""
    with runtime.store.read() as conn:
        return authenticate(conn, key, scope)
