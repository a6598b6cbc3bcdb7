"""Deliveries and bounces written back as ordinary events (``email_delivered``, ``email_bounced``).

The send loop calls ``recorder(runtime)`` with each batch's outcomes after it
has committed them, so segments, journeys and metrics see what happened to an
email like any other event.  Each event's messageId is derived from the
email's idempotency key, so a batch recorded twice is one event, not two.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from tailormail.ingest.messages import Message
from tailormail.runtime import Runtime
from tailormail.store.segments import user_ids
from tailormail.track.hits import MESSAGE_FIELDS

DELIVERED, BOUNCED = "email_delivered", "email_bounced"
EVENT_OF_STATUS = {"sent": DELIVERED, "bounced": BOUNCED}
"""Outbox outcomes that become events (deferred, failed and suppressed mail never reached anyone)."""

log = logging.getLogger("tailormail.track")

Recorder = Callable[[Sequence[dict[str, Any]], Sequence[dict[str, Any]]], None]
"""Called with (claimed outbox rows, their new states) once the send loop has recorded them."""


def delivery_events(
    rows: Sequence[dict[str, Any]], states: Sequence[dict[str, Any]], users: dict[int, str | None]
) -> list[Message]:
    """The messages for one batch's outcomes (people without a user id are skipped).

    Built here, not parsed from Segment JSON: the send loop made every field itself, and
    skipping the public API's validation keeps the write-back cheap beside SMTP.
    """
    out = []
    for row, state in zip(rows, states, strict=True):
        name = EVENT_OF_STATUS.get(state["status"])
        user = users.get(row.get("profile_id"))  # type: ignore[arg-type]
        if name is None or not user:
            continue
        properties = {
            "message_key": row["idempotency_key"],
            "outbox_id": row["id"],
            **{f: row.get(f) for f in MESSAGE_FIELDS},
        }
        if name == BOUNCED:
            properties["reason"] = state.get("last_error")
        out.append(
            Message(
                type="track",
                message_id=f"{name}:{row['idempotency_key']}",
                user_id=user,
                anonymous_id=None,
                timestamp=int(state["updated_at"]),
                event=name,
                properties=properties,
            )
        )
    return out


def recorder(runtime: Runtime) -> Recorder:
    """The send loop's callback that ingests delivery outcomes as events."""

    def record(rows: Sequence[dict[str, Any]], states: Sequence[dict[str, Any]]) -> None:
        settled = [(r, s) for r, s in zip(rows, states, strict=True) if s["status"] in EVENT_OF_STATUS]
        if not settled:
            return
        with runtime.store.read() as conn:
            users = user_ids(conn, {r["profile_id"] for r, _ in settled if r.get("profile_id") is not None})
        messages = delivery_events([r for r, _ in settled], [s for _, s in settled], users)
        if messages:
            runtime.ingestor.ingest(messages)

    return record
