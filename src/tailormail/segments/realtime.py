"""Real time: the ingest hook and the worker tasks that keep memberships current.

The hook re-evaluates, inside the ingest transaction, only the segments the
new events can affect and only for the people they belong to, with the same
compiled query a refresh runs.  Time-window rules also get scheduled
rechecks; the worker applies those when due, so exits happen on time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from tailormail.clock import to_ms
from tailormail.config import Settings
from tailormail.errors import TailormailError
from tailormail.segments import rules as r
from tailormail.segments.definitions import Segment, folder, load_segments
from tailormail.segments.membership import Diff, reevaluate, refresh
from tailormail.segments.rfm import refresh_rfm
from tailormail.segments.schedule import profile_offsets
from tailormail.store import Store
from tailormail.store import segments as q

if TYPE_CHECKING:
    from tailormail.ingest.pipeline import StoredEvent

log = logging.getLogger("tailormail.segments")


class Catalog:
    """A workspace's segment definitions, reloaded when a file changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._signature: tuple[Any, ...] | None = None
        self._segments: dict[str, Segment] = {}

    def signature(self) -> tuple[Any, ...]:
        """File names, sizes and modification times of the segments folder."""
        base = folder(self.settings.workspace)
        files = sorted(base.glob("*.y*ml")) if base.exists() else []
        return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)

    def segments(self) -> dict[str, Segment]:
        """The current definitions; a broken file keeps the last good set (ingest must not fail)."""
        signature = self.signature()
        if signature != self._signature:
            try:
                self._segments = load_segments(self.settings)
            except TailormailError as error:
                log.error("segment definitions not reloaded: %s", error)
            self._signature = signature
        return self._segments


def active_segments(conn: Connection, segments: dict[str, Segment]) -> list[Segment]:
    """Segments whose current rule has been refreshed in full (the baseline real time updates)."""
    state = q.states(conn)
    return [s for s in segments.values() if s.active and state.get(s.name, {}).get("rule_hash") == s.rule_hash]


def affected_profiles(segment: Segment, stored: Sequence[StoredEvent], touched: set[int]) -> set[int]:
    """The people in a batch whose membership in ``segment`` the batch can change.

    ``touched``: profiles created, merged or given traits by the batch; any
    segment may move for them (a new profile already matches "not ..." rules).
    """
    names = r.event_names(segment.rule)
    if profile_offsets(segment.rule):  # first_seen/last_seen move with any event
        return {item.profile_id for item in stored}
    out = set(touched)
    out.update(i.profile_id for i in stored if i.message.type == "track" and i.message.event in names)
    return out


def on_events(
    conn: Connection, segments: dict[str, Segment], stored: Sequence[StoredEvent], now_ms: int, settings: Settings
) -> list[Diff]:
    """Re-evaluate what a batch (not yet committed) can affect; write enters and exits."""
    active = active_segments(conn, segments)
    if not active:
        return []
    touched = q.touched_profiles(conn, {item.profile_id for item in stored}, now_ms)
    diffs = []
    for segment in active:
        ids = affected_profiles(segment, stored, touched)
        if ids:
            diffs.append(reevaluate(conn, segment, ids, now_ms, source="realtime", settings=settings))
    return diffs


def make_hook(settings: Settings) -> Callable[[Connection, list[StoredEvent], int], None]:
    """The ingest hook of a workspace (registered in runtime.ingest_hooks)."""
    catalog = Catalog(settings)

    def segments_hook(conn: Connection, stored: list[StoredEvent], now_ms: int) -> None:
        on_events(conn, catalog.segments(), stored, now_ms, settings)

    return segments_hook


def apply_due_rechecks(store: Store, catalog: Catalog, now_ms: int) -> int:
    """Re-evaluate everyone whose recheck is due; return how many people were rechecked."""
    done = 0
    while True:
        with store.begin() as conn:
            due = q.due_rechecks(conn, now_ms)
            if not due:
                return done
            active = {s.name: s for s in active_segments(conn, catalog.segments())}
            for name, ids in due.items():
                if name in active:
                    reevaluate(conn, active[name], ids, now_ms, source="recheck", settings=catalog.settings)
                else:
                    q.clear_rechecks(conn, name, ids)
                done += len(ids)


def sync_definitions(store: Store, catalog: Catalog, now_ms: int, *, max_age: timedelta | None = None) -> list[Diff]:
    """Refresh new, changed (and, with ``max_age``, stale) segments; forget deleted ones."""
    segments = catalog.segments()
    with store.read() as conn:
        state = q.states(conn)
    stale_before = now_ms - int(max_age.total_seconds() * 1000) if max_age else None
    todo = [
        s
        for s in segments.values()
        if s.active
        and (
            s.name not in state
            or state[s.name]["rule_hash"] != s.rule_hash
            or (stale_before is not None and state[s.name]["refreshed_at"] < stale_before)
        )
    ]
    diffs = []
    with store.begin() as conn:
        for name in set(state) - {s.name for s in segments.values() if s.active}:
            q.forget_segment(conn, name)
        if todo:
            refresh_rfm(conn, catalog.settings, now_ms)
    for segment in todo:
        with store.begin() as conn:
            diffs.append(refresh(conn, segment, now_ms, settings=catalog.settings))
    return diffs


def worker_tasks(runtime: Any) -> list[Any]:
    """Segment rechecks (every half second: exits on time) and definition sync (every minute)."""
    from tailormail.worker import Task

    catalog = Catalog(runtime.settings)

    def rechecks(rt: Any, now: datetime) -> int:
        return apply_due_rechecks(rt.store, catalog, to_ms(now))

    def sync(rt: Any, now: datetime) -> int:
        return len(sync_definitions(rt.store, catalog, to_ms(now), max_age=timedelta(days=1)))

    return [
        Task("segments.rechecks", timedelta(seconds=0.5), rechecks),
        Task("segments.sync", timedelta(minutes=1), sync),
    ]
