"""Looking into and steering the outbox: list, show, retry, suppress, unsuppress."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from tailormail.deliver.outbox import normalize_address
from tailormail.errors import NotFound, ValidationError
from tailormail.store import deliver as queries
from tailormail.store.schema_deliver import STATUSES

REASONS = ("unsubscribe", "bounce", "complaint", "manual")
"""Why an address is suppressed; unsubscribe stops marketing only, the others stop everything."""


def list_messages(conn: Connection, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest outbox rows (without bytes), optionally of one status."""
    if status is not None and status not in STATUSES:
        raise ValidationError(f"unknown status {status!r}", field="status", hint=f"one of {', '.join(STATUSES)}")
    return queries.list_outbox(conn, status, limit)


def show_message(conn: Connection, outbox_id: int) -> dict[str, Any]:
    """One outbox row with its attempts and its MIME text."""
    row = queries.get_outbox(conn, outbox_id)
    if row is None:
        raise NotFound(f"no outbox message with id {outbox_id}", hint="see `tailormail outbox list`")
    row["attempt_log"] = queries.attempts_of(conn, outbox_id)
    row["mime"] = bytes(row["mime"]).decode("utf-8", errors="replace")
    return row


def retry_message(conn: Connection, outbox_id: int, now_ms: int) -> None:
    """Queue a failed, bounced or suppressed message again, due now (the suppression check still applies)."""
    if not queries.requeue(conn, outbox_id, now_ms):
        row = queries.get_outbox(conn, outbox_id)
        if row is None:
            raise NotFound(f"no outbox message with id {outbox_id}", hint="see `tailormail outbox list`")
        raise ValidationError(
            f"message {outbox_id} is {row['status']}; only queued, failed, bounced or suppressed ones can be retried",
            field="id",
        )


def suppress(conn: Connection, address: str, reason: str, now_ms: int, detail: str | None = None) -> str:
    """Suppress an address (replacing an earlier reason); return the normalised address."""
    if reason not in REASONS:
        raise ValidationError(f"unknown reason {reason!r}", field="reason", hint=f"one of {', '.join(REASONS)}")
    cleaned = normalize_address(address, field="address")
    row = {"address": cleaned, "reason": reason, "detail": detail, "created_at": now_ms}
    queries.add_suppressions(conn, [row], replace=True)
    return cleaned


def unsuppress(conn: Connection, address: str) -> str:
    """Lift a suppression; NotFound when the address was not suppressed."""
    cleaned = normalize_address(address, field="address")
    if not queries.remove_suppression(conn, cleaned):
        raise NotFound(f"{cleaned} is not suppressed")
    return cleaned


def suppressions(conn: Connection, limit: int = 1000) -> list[dict[str, Any]]:
    """Suppressed addresses, newest first."""
    return queries.list_suppressions(conn, limit)


def counts(conn: Connection) -> dict[str, int]:
    """How many messages are in each status (every status listed, zeros included)."""
    found = queries.status_counts(conn)
    return {status: found.get(status, 0) for status in STATUSES}
