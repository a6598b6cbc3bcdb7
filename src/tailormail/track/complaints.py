"""Spam complaints: mailbox providers' feedback reports (ARF, RFC 5965) become events and suppressions.

A provider's feedback loop mails a ``multipart/report; report-type=feedback-report``
message to the address the sender registered: a human part, a
``message/feedback-report`` part (Feedback-Type, Original-Rcpt-To, Arrival-Date)
and the original message or its headers.  The original's Message-ID names our
outbox row (we derive it from the idempotency key), so a complaint is tied to
the email that caused it: the address is suppressed (reason ``complaint``) and an
``email_complained`` event is ingested with the email's campaign, journey,
node, template and variant, like opens and clicks.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message as MimeMessage
from email.utils import parsedate_to_datetime
from typing import Any

from tailormail.clock import to_ms
from tailormail.errors import ValidationError
from tailormail.ingest.messages import Message
from tailormail.runtime import Runtime
from tailormail.store import deliver as deliver_q
from tailormail.store.segments import user_ids
from tailormail.track.hits import MESSAGE_FIELDS

COMPLAINED = "email_complained"


@dataclass(frozen=True)
class Complaint:
    """One feedback report: which email, who complained, what kind, when."""

    message_id: str
    feedback_type: str
    recipient: str | None
    arrived_ms: int | None
    source: str


@dataclass
class ComplaintResult:
    """What importing reports did."""

    recorded: int = 0
    suppressed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    """Reports whose Message-ID is not one of ours (another sender's mail, or an old outbox)."""


def parse_report(raw: bytes, source: str) -> Complaint:
    """Read one ARF report; a clear error naming ``source`` when it is not one."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    report = _part(message, "message/feedback-report")
    if report is None:
        raise ValidationError(
            f"{source}: not a feedback report (no message/feedback-report part)",
            field="report",
            hint="give the ARF email (multipart/report; report-type=feedback-report) as the provider sent it",
        )
    fields = _report_fields(report)
    original = _original_headers(message)
    message_id = (original.get("Message-ID") or "").strip() if original is not None else ""
    if not message_id:
        raise ValidationError(
            f"{source}: the report does not carry the original email's Message-ID",
            field="Message-ID",
            hint="the provider must include the original message or its headers (message/rfc822 part)",
        )
    arrived = fields.get("arrival-date")
    recipient = (fields.get("original-rcpt-to") or (original.get("To") if original else "") or "").strip()
    return Complaint(
        message_id=message_id if message_id.startswith("<") else f"<{message_id}>",
        feedback_type=(fields.get("feedback-type") or "abuse").strip().lower(),
        recipient=recipient.strip("<>").lower() or None,
        arrived_ms=_ms(arrived),
        source=source,
    )


def record_complaints(runtime: Runtime, complaints: Sequence[Complaint]) -> ComplaintResult:
    """Suppress each complained-about address and ingest an ``email_complained`` event for its email."""
    result = ComplaintResult()
    now_ms = to_ms(runtime.clock.now())
    with runtime.store.read() as conn:
        rows = deliver_q.outbox_by_message_ids(conn, [c.message_id for c in complaints])
        users = user_ids(conn, {r["profile_id"] for r in rows.values() if r.get("profile_id") is not None})
    events, suppressions = [], []
    for complaint in complaints:
        row = rows.get(complaint.message_id)
        if row is None:
            result.unknown.append(complaint.source)
            continue
        address = row["recipient"]  # our own record of who got it, not what the report claims
        suppressions.append(
            {"address": address, "reason": "complaint", "detail": complaint.feedback_type, "created_at": now_ms}
        )
        result.suppressed.append(address)
        user = users.get(row["profile_id"]) if row.get("profile_id") is not None else None
        if user:
            events.append(_event(row, complaint, user, now_ms))
    with runtime.store.begin() as conn:
        deliver_q.add_suppressions(conn, suppressions, replace=True)
    if events:
        result.recorded = runtime.ingestor.ingest(events).stored
    return result


def _event(row: dict[str, Any], complaint: Complaint, user: str, now_ms: int) -> Message:
    properties: dict[str, Any] = {
        "message_key": row["idempotency_key"],
        "outbox_id": row["id"],
        "feedback_type": complaint.feedback_type,
        **{f: row.get(f) for f in MESSAGE_FIELDS},
    }
    return Message(
        type="track",
        message_id=f"{COMPLAINED}:{row['idempotency_key']}",  # one complaint per email, however often reported
        user_id=user,
        anonymous_id=None,
        timestamp=complaint.arrived_ms or now_ms,
        event=COMPLAINED,
        properties=properties,
    )


def _part(message: MimeMessage, content_type: str) -> MimeMessage | None:
    for part in message.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _report_fields(report: MimeMessage) -> dict[str, str]:
    """The feedback report's fields (its body is a header block; Python may parse it as sub-messages)."""
    payload = report.get_payload()
    if isinstance(payload, list):  # message/* parts: the fields arrive as headers of the first sub-part
        found: dict[str, str] = {}
        for sub in payload:
            if isinstance(sub, MimeMessage):
                found.update({k.lower(): str(v) for k, v in sub.items()})
        return found
    text = payload if isinstance(payload, str) else ""
    parsed = email.message_from_string(text.lstrip("\r\n"))
    return {k.lower(): str(v) for k, v in parsed.items()}


def _original_headers(message: MimeMessage) -> MimeMessage | None:
    for content_type in ("message/rfc822", "text/rfc822-headers"):
        part = _part(message, content_type)
        if part is None:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], MimeMessage):
            return payload[0]
        if isinstance(payload, str):
            return email.message_from_string(payload.lstrip("\r\n"))
    return None


def _ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return to_ms(parsedate_to_datetime(value))
    except (TypeError, ValueError):
        return None
