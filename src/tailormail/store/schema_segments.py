"""Segment tables: memberships, their history, scheduled rechecks and refresh state.

Rows carry no unique (segment, profile_id) key on purpose: an identity merge
moves a person's rows onto another profile, which may hold the same
membership already; readers treat memberships as a set.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table

from tailormail.store.profiles import PROFILE_TABLES
from tailormail.store.schema import Id, metadata

segment_members = Table(
    "segment_members",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("segment", String(100), nullable=False),
    Column("profile_id", Id, nullable=False),
    Column("since", BigInteger, nullable=False, doc="when the person entered (ms)"),
    Index("ix_segment_members_segment_profile", "segment", "profile_id"),
    Index("ix_segment_members_profile", "profile_id"),
)

segment_changes = Table(
    "segment_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("segment", String(100), nullable=False),
    Column("profile_id", Id, nullable=False),
    Column("change", String(8), nullable=False, doc="entered or exited"),
    Column("at", BigInteger, nullable=False),
    Column("source", String(16), nullable=False, doc="refresh, realtime or recheck"),
    Index("ix_segment_changes_segment_at", "segment", "at"),
    Index("ix_segment_changes_profile", "profile_id"),
)

segment_rechecks = Table(
    "segment_rechecks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("segment", String(100), nullable=False),
    Column("profile_id", Id, nullable=False),
    Column("due_at", BigInteger, nullable=False, doc="a moment membership may change by itself"),
    Index("ix_segment_rechecks_due", "due_at"),
    Index("ix_segment_rechecks_segment_profile", "segment", "profile_id"),
    Index("ix_segment_rechecks_profile", "profile_id"),
)

segment_state = Table(
    "segment_state",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("rule_hash", String(32), nullable=False, doc="the rule last refreshed in full"),
    Column("refreshed_at", BigInteger, nullable=False),
    Column("size", Integer, nullable=False),
    Column("changed_at", BigInteger, nullable=True, doc="last time anyone entered or left"),
    Column(
        "scanned_until",
        BigInteger,
        nullable=True,
        doc="event moments (ts + window offset) up to here are applied; null: refreshed_at",
    ),
)

SEGMENT_TABLES = (segment_members, segment_changes, segment_rechecks, segment_state)

PROFILE_TABLES.extend(
    [(segment_members, "profile_id"), (segment_changes, "profile_id"), (segment_rechecks, "profile_id")]
)
