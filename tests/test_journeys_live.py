"""Journeys end to end on the workspace presets: trigger, timer, render, outbox, tracked links."""

from __future__ import annotations

import email
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from tailormail.clock import ManualClock
from tailormail.journeys.service import forget_runners
from tailormail.runtime import Runtime
from tailormail.store.schema_deliver import outbox, outbox_bodies
from tailormail.worker import make_worker


def test_cart_abandonment_puts_one_rendered_email_in_the_outbox_an_hour_later(
    runtime: Runtime, clock: ManualClock, workspace: Path
) -> None:
    forget_runners()
    runtime.ingestor.ingest_raw(
        [
            {
                "type": "identify",
                "userId": "ann",
                "traits": {"email": "ann@example.com", "firstName": "Ann", "timezone": "UTC"},
            },
            {
                "type": "track",
                "userId": "ann",
                "event": "add_to_cart",
                "timestamp": clock.now().isoformat(),
                "properties": {"product_id": "p1", "name": "Trail Shoe", "price": 89.0, "quantity": 1},
            },
        ]
    )
    worker = make_worker(runtime)
    worker.run_once()
    with runtime.store.read() as conn:
        assert conn.execute(select(outbox.c.id)).first() is None  # nothing before the hour is up
    clock.advance(timedelta(hours=1, seconds=1))
    worker.run_once()
    with runtime.store.read() as conn:
        rows = conn.execute(select(outbox.c.journey, outbox.c.node, outbox.c.recipient, outbox.c.id)).all()
        body = conn.execute(select(outbox_bodies)).mappings().first()
    assert [(r[0], r[1], r[2]) for r in rows] == [("cart_abandonment", "reminder", "ann@example.com")]
    assert body is not None
    message = email.message_from_bytes(next(v for v in body.values() if isinstance(v, bytes)))
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    assert "Trail Shoe" in html and "/c/" in html and "/u/" in html  # the cart item, tracked links, unsubscribe
    forget_runners()


def test_entering_a_segment_starts_its_journey_but_a_new_segments_backfill_does_not(
    runtime: Runtime, clock: ManualClock
) -> None:
    from tailormail.clock import to_ms
    from tailormail.segments.realtime import Catalog, sync_definitions
    from tailormail.store.schema_journeys import journey_runs

    forget_runners()
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": "old", "traits": {"email": "old@example.com"}}])
    # The first computation of new_subscribers finds "old" already there: a backfill, not an entry.
    sync_definitions(runtime.store, Catalog(runtime.settings), to_ms(clock.now()))
    clock.advance(timedelta(minutes=1))
    # Real time: "ann" enters new_subscribers in the ingest transaction, and with it welcome_series.
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": "ann", "traits": {"email": "ann@example.com"}}])
    with runtime.store.read() as conn:
        runs = conn.execute(select(journey_runs.c.journey, journey_runs.c.trigger)).all()
        sent = conn.execute(select(outbox.c.journey, outbox.c.node, outbox.c.recipient)).all()
    assert [r[0] for r in runs] == ["welcome_series"]
    assert runs[0][1] == {"segment": "new_subscribers", "change": "entered"}
    assert [tuple(r) for r in sent] == [("welcome_series", "welcome", "ann@example.com")]
    forget_runners()
