"""Writing to the outbox: what other domains call, inside their own transaction.

A journey step or a campaign calls ``enqueue`` on the connection of the
transaction that decided the email, so the decision and the email commit
together or not at all.  The idempotency key makes a repeated decision a no-op.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any

from sqlalchemy import Connection

from tailormail.content.mime import message_id_for
from tailormail.errors import ValidationError
from tailormail.store import deliver as queries
from tailormail.store.schema_deliver import KINDS

_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class Email:
    """One finished email for one recipient, as a domain hands it to the outbox."""

    key: str
    """Idempotency key, e.g. ``run:42/node:reminder/attempt:1`` or ``campaign:spring/profile:7``."""
    to: str
    mime: bytes
    kind: str = "marketing"
    profile_id: int | None = None
    not_before_ms: int | None = None
    campaign: str | None = None
    journey: str | None = None
    node: str | None = None
    template: str | None = None
    variant: str | None = None


def normalize_address(address: str, *, field: str = "to") -> str:
    """A lower-cased, checked email address; a clear error for anything else."""
    cleaned = address.strip().lower()
    if not _ADDRESS.match(cleaned):
        raise ValidationError(f"{address!r} is not an email address", field=field, hint="use name@example.com")
    return cleaned


def domain_of(address: str) -> str:
    """The domain part of an address."""
    return address.rpartition("@")[2]


def head_length(mime: bytes) -> int:
    """Where the header block of a MIME message ends (the blank line included)."""
    match = _HEAD_END.search(mime)
    return match.end() if match else len(mime)


def head_of(mime: bytes) -> Message:
    """The parsed header block of a MIME message (the body is not parsed)."""
    return BytesHeaderParser().parsebytes(mime[: head_length(mime)])


Finish = Callable[[dict[str, Any], int], bytes]
"""(outbox row, its id) -> the bytes to store: what ``headers.Finisher`` adds before sending."""


def enqueue(conn: Connection, email: Email, *, now_ms: int, finish: Finish | None = None) -> int:
    """Put one email in the outbox (idempotent on its key); return its outbox id."""
    return enqueue_many(conn, [email], now_ms=now_ms, finish=finish)[email.key]


def enqueue_many(
    conn: Connection, emails: Sequence[Email], *, now_ms: int, finish: Finish | None = None
) -> dict[str, int]:
    """Put emails in the outbox in one statement; return key -> outbox id (old or new).

    With ``finish`` the stored bytes are the wire bytes (headers added now, not per send).
    """
    rows = [_row(email, index, now_ms) for index, email in enumerate(emails)]
    return queries.insert_outbox(conn, rows, finish)


def _row(email: Email, index: int, now_ms: int) -> dict[str, object]:
    if not email.key or len(email.key) > 255:
        raise ValidationError("an idempotency key of 1 to 255 characters is required", field="key", index=index)
    if email.kind not in KINDS:
        raise ValidationError(
            f"unknown kind {email.kind!r}", field="kind", index=index, hint="marketing or transactional"
        )
    head = head_of(email.mime)
    senders = getaddresses(head.get_all("From", []))
    if not senders or not senders[0][1]:
        raise ValidationError("the MIME message has no From header", field="mime", index=index)
    sender = normalize_address(senders[0][1], field="From")
    not_before = email.not_before_ms if email.not_before_ms is not None else now_ms
    return {
        "idempotency_key": email.key,
        "message_id": str(head.get("Message-ID") or "").strip() or message_id_for(email.key, domain_of(sender)),
        "recipient": normalize_address(email.to),
        "sender": sender,
        "profile_id": email.profile_id,
        "kind": email.kind,
        "campaign": email.campaign,
        "journey": email.journey,
        "node": email.node,
        "template": email.template,
        "variant": email.variant,
        "mime": email.mime,
        "not_before": not_before,
        "status": "queued",
        "attempts": 0,
        "next_attempt_at": not_before,
        "created_at": now_ms,
        "updated_at": now_ms,
    }
