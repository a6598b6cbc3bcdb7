"""Named queries analytics reads: the outbox's sends and the email and goal events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, select

from tailormail.store.schema import events
from tailormail.store.schema_deliver import outbox

SEND_COLUMNS = (
    "idempotency_key",
    "profile_id",
    "status",
    "campaign",
    "journey",
    "node",
    "template",
    "variant",
    "sent_at",
    "created_at",
)


def sends(conn: Connection, batch: int = 20_000) -> Iterator[dict[str, Any]]:
    """Every outbox row (without its bytes), in id order."""
    columns = [outbox.c.id, *(outbox.c[name] for name in SEND_COLUMNS)]
    last = 0
    while True:
        rows = (
            conn.execute(select(*columns).where(outbox.c.id > last).order_by(outbox.c.id).limit(batch)).mappings().all()
        )
        if not rows:
            return
        yield from (dict(r) for r in rows)
        last = rows[-1]["id"]


def events_named(conn: Connection, names: Sequence[str], batch: int = 50_000) -> Iterator[dict[str, Any]]:
    """Events with these names (profile, time, properties, revenue), in id order."""
    columns = [events.c.id, events.c.profile_id, events.c.event, events.c.ts, events.c.properties, events.c.revenue]
    last = 0
    while True:
        stmt = select(*columns).where(events.c.event.in_(list(names)), events.c.id > last)
        rows = conn.execute(stmt.order_by(events.c.id).limit(batch)).mappings().all()
        if not rows:
            return
        yield from (dict(r) for r in rows)
        last = rows[-1]["id"]
