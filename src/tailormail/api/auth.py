"""API key authentication: Basic (Segment style), Bearer, or writeKey in the body."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable

from fastapi import Request

from tailormail.runtime import Runtime
from tailormail.store.keys import ApiKey, allowed, authenticate, hash_key

KEY_TRUST_SECONDS = 1.0
"""How long a key found valid is trusted without reading it again; a key revoked from the CLI stops within this."""


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
    """Authenticate a key for ``scope`` (raises AuthError/ScopeError); a key found valid is trusted for a second."""
    if key:
        trusted = key_cache(runtime).get(key)
        if trusted is not None:
            return allowed(trusted, scope)
    with runtime.store.read() as conn:
        record = authenticate(conn, key, "write")  # any valid key, so the record serves either scope from the cache
    key_cache(runtime).put(key or "", record)
    return allowed(record, scope)


class KeyCache:
    """Keys found valid lately, by hash: busy clients send the same key with every request.

    Reading the key in its own transaction was 5-8 % of the server's CPU
    under ingest load.  Only valid keys are kept, so a new key works at once
    and an unknown one is read every time; a revoked one is refused once its
    entry is ``KEY_TRUST_SECONDS`` old.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, most: int = 1000) -> None:
        self.clock, self.most = clock, most
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[ApiKey, float]] = {}

    def get(self, key: str) -> ApiKey | None:
        """The record of a key found valid less than ``KEY_TRUST_SECONDS`` ago, else None."""
        entry = self._entries.get(hash_key(key))
        if entry is None or self.clock() - entry[1] >= KEY_TRUST_SECONDS:
            return None
        return entry[0]

    def put(self, key: str, record: ApiKey) -> None:
        """Remember a key just found valid."""
        with self._lock:
            if len(self._entries) >= self.most:  # keys are few; this only bounds memory if someone cycles through many
                self._entries.clear()
            self._entries[hash_key(key)] = (record, self.clock())


def key_cache(runtime: Runtime) -> KeyCache:
    """The runtime's cache of valid keys (made on first use)."""
    return runtime.kept("key_cache", KeyCache)
