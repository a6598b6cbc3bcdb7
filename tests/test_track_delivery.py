"""Deliveries and bounces come back as ordinary events, and metrics count them from there."""

from __future__ import annotations

from sqlalchemy import select

from outbox_helpers import send_plain
from tailormail.analytics.metrics import compute
from tailormail.clock import ManualClock
from tailormail.deliver.memory import MemoryTransport
from tailormail.deliver.transport import SendResult
from tailormail.runtime import Runtime
from tailormail.store.schema import events
from tailormail.track.delivery import delivery_events

USERS = ["a", "b", "c"]


def send(runtime: Runtime, clock: ManualClock) -> None:
    runtime.ingestor.ingest_raw(
        [{"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com"}} for u in USERS]
    )
    refused = {"c@example.com": [SendResult(550, "5.1.1 no such user")]}
    fields = {u: {"key": f"spring/{u}", "campaign": "spring", "template": "promo"} for u in USERS}
    send_plain(runtime, clock, fields, MemoryTransport(refused))


def test_the_send_loop_writes_delivered_and_bounced_events(runtime: Runtime, clock: ManualClock) -> None:
    send(runtime, clock)
    with runtime.store.read() as conn:
        rows = conn.execute(
            select(events.c.event, events.c.properties).where(events.c.event.like("email_%")).order_by(events.c.id)
        ).all()
    found = sorted((name, props["message_key"], props["campaign"], props["template"]) for name, props in rows)
    assert found == [
        ("email_bounced", "spring/c", "spring", "promo"),
        ("email_delivered", "spring/a", "spring", "promo"),
        ("email_delivered", "spring/b", "spring", "promo"),
    ]
    bounce = next(props for name, props in rows if name == "email_bounced")
    assert "550" in bounce["reason"]


def test_metrics_count_deliveries_from_the_events(runtime: Runtime, clock: ManualClock) -> None:
    send(runtime, clock)
    # A late bounce report for b arrives after the server had accepted the mail: the event decides.
    runtime.ingestor.ingest_raw(
        [
            {
                "type": "track",
                "userId": "b",
                "event": "email_bounced",
                "messageId": "late-dsn-b",
                "properties": {"message_key": "spring/b", "reason": "5.2.2 mailbox full"},
            }
        ]
    )
    with runtime.store.read() as conn:
        [m] = compute(conn, ["campaign"], goal_event="purchase", attribution_days=5)
    assert (m.sent, m.delivered, m.bounced) == (3, 1, 2)


def test_people_without_a_user_id_and_unsent_mail_give_no_event() -> None:
    rows = [
        {"id": 1, "idempotency_key": "k1", "profile_id": 7},
        {"id": 2, "idempotency_key": "k2", "profile_id": 8},
        {"id": 3, "idempotency_key": "k3", "profile_id": 7},
    ]
    states = [
        {"status": "sent", "updated_at": 0},
        {"status": "sent", "updated_at": 0},
        {"status": "queued", "updated_at": 0},
    ]
    messages = delivery_events(rows, states, {7: "u7", 8: None})
    assert [(m.user_id, m.message_id, m.event) for m in messages] == [("u7", "email_delivered:k1", "email_delivered")]
