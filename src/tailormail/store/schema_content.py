"""Content tables: compiled template versions, why a recipient got no mail, trained recommendation models."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from tailormail.store.profiles import PROFILE_TABLES
from tailormail.store.schema import Id, metadata

template_versions = Table(
    "template_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("template", String(255), nullable=False),
    Column("content_hash", String(64), nullable=False, doc="template + blocks + layout + compiler version"),
    Column("language", String(16), nullable=False),
    Column("blocks", JSON, nullable=False, default=list, doc="block names used"),
    Column("slots", JSON, nullable=False, default=list, doc="link slots: id, block, position, url, kind"),
    Column("html_bytes", Integer, nullable=False),
    Column("compiled_at", BigInteger, nullable=False),
    Index("ux_template_versions_hash", "template", "content_hash", unique=True),
)

render_failures = Table(
    "render_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("template", String(255), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("profile_id", Id, nullable=False),
    Column("message_key", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("failed_at", BigInteger, nullable=False),
    Index("ix_render_failures_template", "template", "failed_at"),
    Index("ix_render_failures_profile", "profile_id"),
)

recommend_models = Table(
    "recommend_models",
    metadata,
    Column("key", String(64), primary_key=True, doc="hash of the event names and [recommend] settings it learnt with"),
    Column("trained_as_of", BigInteger, nullable=False, doc="the events before this moment (ms) trained it"),
    Column("payload", LargeBinary, nullable=False, doc="the model as an .npz archive (no pickles)"),
)

if (render_failures, "profile_id") not in PROFILE_TABLES:
    PROFILE_TABLES.append((render_failures, "profile_id"))
