"""Delivery tables: the outbox, every send attempt, and the suppression list.

The outbox is the hand-off between the domain that decides an email (a journey
step, a campaign) and the worker that sends it: a row is written in the same
transaction as the decision, keyed by an idempotency key, so deciding twice
still sends once.  A worker claims rows with a lease (``claimed_by``,
``lease_until``); a killed worker's rows are claimed again once it runs out.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, LargeBinary, String, Table, Text

from tailormail.store.profiles import PROFILE_TABLES
from tailormail.store.schema import Id, metadata

STATUSES = ("queued", "sending", "sent", "failed", "bounced", "suppressed")
"""queued: waiting (maybe for not_before or a retry); sending: claimed by a worker;
sent, failed (temporary failures ran out), bounced (5xx), suppressed: final."""

KINDS = ("marketing", "transactional")

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("message_id", String(255), nullable=False, doc="the Message-ID, derived from the key"),
    Column("recipient", String(320), nullable=False, doc="lower-cased address"),
    Column("sender", String(320), nullable=False, doc="envelope sender (MAIL FROM)"),
    Column("profile_id", Id, nullable=True),
    Column("kind", String(16), nullable=False),
    Column("campaign", String(255), nullable=True),
    Column("journey", String(255), nullable=True),
    Column("node", String(255), nullable=True),
    Column("template", String(255), nullable=True),
    Column("variant", String(255), nullable=True),
    Column("not_before", BigInteger, nullable=False, doc="never sent before this (ms)"),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger, nullable=True),
    # The claim query: due queued rows, and sending rows whose lease ran out.
    Index("ix_outbox_status_due", "status", "next_attempt_at"),
    Index("ix_outbox_profile", "profile_id"),
    Index("ix_outbox_campaign", "campaign"),
)

outbox_bodies = Table(
    "outbox_bodies",
    metadata,
    # The bytes live apart from the row: a status update then rewrites ~200 bytes,
    # not the whole message (on SQLite, 3x less WAL per batch at 2 KB a message).
    Column("outbox_id", Id, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("mime", LargeBinary, nullable=False),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("outbox_id", Id, ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("result", String(16), nullable=False, doc="sent, deferred, bounced, failed, suppressed, interrupted"),
    Column("smtp_code", Integer, nullable=True),
    Column("smtp_response", Text, nullable=True),
    Column("worker", String(128), nullable=True),
    Column("at", BigInteger, nullable=False),
    Index("ix_delivery_attempts_outbox", "outbox_id", "id"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("address", String(320), primary_key=True, doc="lower-cased address"),
    Column("reason", String(16), nullable=False, doc="unsubscribe, bounce, complaint or manual"),
    Column("detail", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

# Erasing a person deletes their queued and sent mail (attempts cascade); the
# suppression list keeps the bare address so an erased person is never mailed again.
PROFILE_TABLES.append((outbox, "profile_id"))
