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
