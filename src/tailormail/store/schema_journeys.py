"""Journey tables: runs, their timers, and the log of what each run did."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    select,
)

from tailormail.store.profiles import PROFILE_ROWS, PROFILE_TABLES
from tailormail.store.schema import Id, metadata

journey_runs = Table(
    "journey_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("journey", String(255), nullable=False),
    Column("profile_id", Id, nullable=False),
    Column("status", String(16), nullable=False, doc="active | waiting | done"),
    Column("position", String(255), nullable=True, doc="the node the run is parked at"),
    Column("waiting_for", String(255), nullable=True, doc="wait_for: the event awaited"),
    Column("on_event", String(255), nullable=True),
    Column("on_timeout", String(255), nullable=True),
    Column("trigger", JSON, nullable=False, default=dict, doc="the entry event's properties"),
    Column("attempt", Integer, nullable=False, default=0),
    Column("entered_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("finish_reason", String(64), nullable=True),
    # One index leads with the person (a person's runs, of one journey or all); the journey's own
    # leads with what its reports group by.  New runs land at the end of their journey's group, so
    # a batch that starts runs for 1,000 people writes a few pages of it, not one page each as
    # (journey, profile_id) did.
    Index("ix_journey_runs_profile_journey", "profile_id", "journey", "status"),
    Index("ix_journey_runs_journey_status", "journey", "status", "position"),
    Index("ix_journey_runs_waiting", "waiting_for", "status"),
)

JOURNEY_RUN_INDEXES_BEFORE = ("ix_journey_runs_profile", "ix_journey_runs_journey")
"""The run indexes of workspaces made before migration 13, which replaces them."""

journey_timers = Table(
    "journey_timers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, nullable=False),
    Column("profile_id", Id, nullable=False),
    Column("due_at", BigInteger, nullable=False),
    Column("resume", String(255), nullable=True, doc="the node to continue at (null: the run ends)"),
    Column("kind", String(16), nullable=False, doc="wake | timeout"),
    Column("fired_at", BigInteger, nullable=True),
    Index("ix_journey_timers_due", "fired_at", "due_at"),
    Index("ix_journey_timers_run", "run_id"),
)

journey_log = Table(
    "journey_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, nullable=False),
    Column("journey", String(255), nullable=False),
    Column("profile_id", Id, nullable=False),
    Column("node", String(255), nullable=True),
    Column("action", String(32), nullable=False),
    Column("detail", JSON, nullable=False, default=dict),
    Column("at", BigInteger, nullable=False),
    Index("ix_journey_log_journey", "journey", "node", "action"),
    # By run, not by person: a run's lines are written as it moves, and new runs take the
    # highest ids, so an ingested batch that starts runs for 1,000 people appends to the last
    # pages of this index, where (profile_id, action, at) took a page for each person (about
    # 300 of the 4,700 pages such a batch wrote on a shop of a million).  A person's lines are
    # found through their runs (``journey_runs`` leads with the person).
    Index("ix_journey_log_run", "run_id"),
)

JOURNEY_LOG_INDEXES_BEFORE = ("ix_journey_log_profile",)
"""The log index of workspaces made before migration 15, which replaces it."""

journey_state = Table(
    "journey_state",
    metadata,
    Column("journey", String(255), primary_key=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("broadcast_at", BigInteger, nullable=True, doc="when a broadcast journey enrolled its segment"),
    Column("updated_at", BigInteger, nullable=False),
)

JOURNEY_TABLES = (journey_runs, journey_timers, journey_log, journey_state)


def through_runs(table: Table) -> Callable[[int], ColumnElement[bool]]:
    """A person's rows of a table of runs' rows (log, timers), found by run: those tables have no person index."""

    def rows(profile_id: int) -> ColumnElement[bool]:
        runs = select(journey_runs.c.id).where(journey_runs.c.profile_id == profile_id)
        return and_(table.c.run_id.in_(runs), table.c.profile_id == profile_id)

    return rows


# The log and the timers before the runs: merges and erasure find their rows through the
# person's runs, which must still be theirs (a person's timers used to be found by a scan).
PROFILE_TABLES.extend([(journey_log, "profile_id"), (journey_timers, "profile_id"), (journey_runs, "profile_id")])
PROFILE_ROWS.update({journey_log: through_runs(journey_log), journey_timers: through_runs(journey_timers)})

campaigns = Table(
    "campaigns",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("template", String(255), nullable=False),
    Column("segment", String(255), nullable=False),
    Column("kind", String(16), nullable=False, default="marketing"),
    Column("subjects", JSON, nullable=False, default=list, doc="subject A/B variants (empty: the template's)"),
    Column("holdout", Float, nullable=False, default=0.0, doc="share of the segment that receives nothing"),
    Column("send_at", BigInteger, nullable=False, doc="when the segment is resolved and the emails decided"),
    Column("status", String(16), nullable=False, doc="scheduled | sending | done | cancelled"),
    Column("created_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger, nullable=True),
    Column("finished_at", BigInteger, nullable=True),
    Index("ix_campaigns_due", "status", "send_at"),
)

campaign_members = Table(
    "campaign_members",
    metadata,
    # One row per person the segment held at send time: the arm they were assigned
    # (holdout rows are the control group analytics measures lift against) and what
    # happened; the primary key makes deciding twice for a person impossible.
    Column("campaign", String(255), primary_key=True),
    Column("profile_id", Id, primary_key=True, autoincrement=False),
    Column("arm", String(64), nullable=False, doc="A, B, ... (subject variants), all, or holdout"),
    Column("status", String(16), nullable=False, doc="pending | queued | skipped | holdout | failed"),
    Column("reason", String(255), nullable=True, doc="why skipped or failed (suppressed, frequency cap, render)"),
    Column("due_at", BigInteger, nullable=False, doc="pending until then (quiet hours move it)"),
    Column("outbox_key", String(255), nullable=True),
    Column("decided_at", BigInteger, nullable=True),
    Index("ix_campaign_members_due", "status", "due_at"),
    # Merges (an identify call inside ingest) and erasure find a person's rows by this; the
    # primary key leads with the campaign, and without it each merge read every campaign's members.
    Index("ix_campaign_members_profile", "profile_id"),
)

webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    # A webhook step writes its POST here in the step's transaction; the worker posts it
    # afterwards, outside any transaction, at least once, with the key as Idempotency-Key.
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("journey", String(255), nullable=True),
    Column("node", String(255), nullable=True),
    Column("profile_id", Id, nullable=True),
    Column("status", String(16), nullable=False, doc="queued | sending | sent | failed"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_status", Integer, nullable=True, doc="the last HTTP status received"),
    Column("last_error", Text, nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger, nullable=True),
    Index("ix_webhook_outbox_due", "status", "next_attempt_at"),
    Index("ix_webhook_outbox_profile", "profile_id"),  # merges and erasure, as for campaign members
)

CAMPAIGN_TABLES = (campaigns, campaign_members, webhook_outbox)
PROFILE_TABLES.extend([(campaign_members, "profile_id"), (webhook_outbox, "profile_id")])
