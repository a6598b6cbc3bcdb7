"""API keys: created once, shown once, stored only as a SHA-256 hash.

Keys are 256 random bits, so a fast hash is as safe as a slow one here (no
dictionary to guess from) and lets every request look its key up by index.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from tailormail.errors import AuthError, NotFound, ScopeError, ValidationError
from tailormail.store.schema import api_keys

SCOPES = ("write", "admin")
"""write: may only ingest; admin: may do everything."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: int
    name: str
    prefix: str
    scope: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(conn: Connection, scope: str, name: str, now_ms: int) -> tuple[ApiKey, str]:
    """Create a key; return its record and the plaintext (shown once, never stored)."""
    if scope not in SCOPES:
        raise ValidationError(f"unknown scope {scope!r}", field="scope", hint="use write or admin")
    plaintext = f"tm_{scope}_{secrets.token_urlsafe(32)}"
    prefix = plaintext[: len(scope) + 12]
    key_id = conn.execute(
        api_keys.insert().returning(api_keys.c.id),
        {"name": name, "prefix": prefix, "key_hash": hash_key(plaintext), "scope": scope, "created_at": now_ms},
    ).scalar_one()
    return ApiKey(key_id, name, prefix, scope, now_ms, None, None), plaintext


def list_keys(conn: Connection) -> list[ApiKey]:
    """Every key, oldest first."""
    rows = conn.execute(select(api_keys).order_by(api_keys.c.id)).mappings()
    return [_record(r) for r in rows]


def revoke_key(conn: Connection, key_id: int, now_ms: int) -> None:
    """Revoke a key so it authenticates nothing from now on."""
    done = conn.execute(
        update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now_ms)
    )
    if done.rowcount == 0:
        raise NotFound(f"no active key with id {key_id}", hint="see `tailormail keys list`")


def authenticate(conn: Connection, key: str | None, needed: str) -> ApiKey:
    """The key's record if it exists, is active and its scope allows ``needed``."""
    if not key:
        raise AuthError("missing API key", hint="send it as the Basic auth user name or a Bearer token")
    row = conn.execute(select(api_keys).where(api_keys.c.key_hash == hash_key(key))).mappings().first()
    if row is None or row["revoked_at"] is not None:
        raise AuthError("unknown or revoked API key")
    return allowed(_record(row), needed)


def allowed(record: ApiKey, needed: str) -> ApiKey:
    """The key's record if its scope allows ``needed`` (raises ScopeError)."""
    if needed == "admin" and record.scope != "admin":
        raise ScopeError("this key may only ingest events", hint="use an admin key")
    return record


def _record(row: Any) -> ApiKey:
    return ApiKey(
        row["id"], row["name"], row["prefix"], row["scope"], row["created_at"], row["last_used_at"], row["revoked_at"]
    )
