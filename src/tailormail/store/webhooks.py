"""Named queries on the webhook outbox: journey webhook steps waiting to be posted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from tailormail.store.dialect import insert_ignoring_conflicts
from tailormail.store.schema_journeys import webhook_outbox


def enqueue(conn: Connection, row: dict[str, Any]) -> None:
    """Add a POST to make (a known idempotency key is left alone)."""
    conn.execute(insert_ignoring_conflicts(conn, webhook_outbox), [row])


def claim_due(conn: Connection, worker: str, now_ms: int, lease_ms: int, limit: int) -> list[dict[str, Any]]:
    """Claim due posts (and those whose claimer died: its lease ran out) until ``now_ms + lease_ms``."""
    c = webhook_outbox.c
    due = or_(
        and_(c.status == "queued", c.next_attempt_at <= now_ms),
        and_(c.status == "sending", c.lease_until < now_ms),
    )
    stmt = select(webhook_outbox).where(due).order_by(c.next_attempt_at, c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    if rows:
        conn.execute(
            update(webhook_outbox)
            .where(c.id.in_([r["id"] for r in rows]))
            .values(status="sending", claimed_by=worker, lease_until=now_ms + lease_ms, attempts=c.attempts + 1)
        )
    return rows


def finish(conn: Connection, worker: str, row_id: int, now_ms: int, **values: Any) -> None:
    """Record an attempt's result, only if ``worker`` still holds the row."""
    c = webhook_outbox.c
    conn.execute(
        update(webhook_outbox)
        .where(c.id == row_id, c.claimed_by == worker, c.status == "sending")
        .values(claimed_by=None, lease_until=None, updated_at=now_ms, **values)
    )


def status_counts(conn: Connection) -> dict[str, int]:
    """Posts per status."""
    stmt = select(webhook_outbox.c.status, func.count()).group_by(webhook_outbox.c.status)
    return {status: int(n) for status, n in conn.execute(stmt)}


def all_posts(conn: Connection) -> list[dict[str, Any]]:
    """Every post, oldest first (for tests and `journeys show`)."""
    return [dict(r) for r in conn.execute(select(webhook_outbox).order_by(webhook_outbox.c.id)).mappings()]
