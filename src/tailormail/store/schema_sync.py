"""Sync tables: run logs, per-source state (watermarks, alerts) and the outbound outbox."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Table, Text

from tailormail.store.profiles import PROFILE_TABLES
from tailormail.store.schema import Id, metadata

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, doc="the source or destination name"),
    Column("kind", String(16), nullable=False, doc="source or destination"),
    Column("trigger", String(16), nullable=False, doc="schedule, manual or worker"),
    Column("status", String(16), nullable=False, doc="running, ok, partial or failed"),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("read", Integer, nullable=False, default=0),
    Column("written", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("retries", Integer, nullable=False, default=0),
    Column("errors", JSON, nullable=False, default=list, doc="first errors and retries, with the record"),
    Column("watermark", Text, nullable=True, doc="the watermark reached"),
    Index("ix_sync_runs_name_started", "name", "started_at"),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("watermark", Text, nullable=True, doc="resume point of an incremental source"),
    Column("registered_at", BigInteger, nullable=False, doc="first time the worker saw it (lateness baseline)"),
    Column("alerted_at", BigInteger, nullable=True, doc="when the current alert was raised; null: healthy"),
    Column("alert_reason", Text, nullable=True),
)

sync_outbox = Table(
    "sync_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("destination", String(255), nullable=False),
    Column("idempotency_key", String(400), nullable=False, unique=True),
    Column("profile_id", Id, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False, doc="pending, sent or dead"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger, nullable=True),
    Index("ix_sync_outbox_due", "status", "destination", "next_attempt_at"),
    Index("ix_sync_outbox_profile", "profile_id"),
)

if (sync_outbox, "profile_id") not in PROFILE_TABLES:
    PROFILE_TABLES.append((sync_outbox, "profile_id"))
