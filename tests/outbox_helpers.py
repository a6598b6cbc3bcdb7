"""Put plain emails in the real outbox for known people and send them (for tracking and analytics tests)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from tailormail.clock import ManualClock, to_ms
from tailormail.deliver.memory import MemoryTransport
from tailormail.deliver.outbox import Email, enqueue
from tailormail.deliver.service import open_sender
from tailormail.runtime import Runtime
from tailormail.store import profiles as profile_q


def send_plain(
    runtime: Runtime, clock: ManualClock, fields: dict[str, dict[str, Any]], transport: MemoryTransport | None = None
) -> dict[str, tuple[str, int]]:
    """Enqueue one "Hi" email per user (``fields``: user -> Email fields with ``key``) and send; user -> (key, id)."""
    sent = {}
    with runtime.store.begin() as conn:
        for user, extra in fields.items():
            profile = profile_q.get_profile(conn, user_id=user)
            assert profile is not None, user
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "shop@example.com", f"{user}@example.com", "Hi"
            msg.set_content("hi")
            email = Email(to=f"{user}@example.com", mime=msg.as_bytes(), profile_id=profile["id"], **extra)
            enqueue(conn, email, now_ms=to_ms(clock.now()))
            sent[user] = (email.key, profile["id"])
    sender = open_sender(runtime, transport or MemoryTransport())
    sender.run_round()
    sender.close()
    return sent
