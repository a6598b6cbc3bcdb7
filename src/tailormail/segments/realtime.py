"""Real time: the ingest hook and the worker tasks that keep memberships current.

The hook re-evaluates, inside the ingest transaction, only the segments the
new events can affect (the dependency index, ``depends``) and only for the
people they belong to, with the same compiled query a refresh runs, once per
segment per batch.  Time-window rules also get scheduled rechecks; the worker
applies those when due, so entries and exits happen on time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from tailormail.clock import to_ms
from tailormail.config import Settings
from tailormail.errors import TailormailError
from tailormail.segments.definitions import Segment, folder, load_segments
from tailormail.segments.depends import dependencies
from tailormail.segments.membership import Diff, reevaluate, reevaluate_many, refresh
from tailormail.segments.rfm import refresh_rfm
from tailormail.segments.schedule import Clocks, scanned_offsets, schedule_batch
from tailormail.store import Store
from tailormail.store import profiles as profile_q
from tailormail.store import segments as q
from tailormail.throttle import Throttle

if TYPE_CHECKING:
    from tailormail.ingest.pipeline import StoredEvent

log = logging.getLogger("tailormail.segments")


class Catalog:
    """A workspace's segment definitions, reloaded when a file changes.

    With a ``throttle`` (the ingest hook's), the folder is compared at most once
    per its interval; ``segments(state)`` compares it at once whenever the stored
    refresh state names a rule the loaded definitions do not have, so a newly
    refreshed definition is used by the very next batch, as without a throttle.
    """

    def __init__(self, settings: Settings, throttle: Throttle | None = None) -> None:
        self.settings = settings
        self.throttle = throttle
        self._signature: tuple[Any, ...] | None = None
        self._segments: dict[str, Segment] = {}

    def signature(self) -> tuple[Any, ...]:
        """File names, sizes and modification times of the segments folder."""
        base = folder(self.settings.workspace)
        files = sorted(base.glob("*.y*ml")) if base.exists() else []
        stats = [(p.name, p.stat()) for p in files]  # checked for every ingested batch: one stat per file
        return tuple((name, st.st_mtime_ns, st.st_size) for name, st in stats)

    def segments(self, state: dict[str, dict[str, Any]] | None = None) -> dict[str, Segment]:
        """The current definitions; a broken file keeps the last good set (ingest must not fail)."""
        due = self.throttle is None or self.throttle.due() or self._signature is None
        if not due and state is not None and self._behind(state):
            due = True
        if not due:
            return self._segments
        signature = self.signature()
        if signature != self._signature:
            try:
                self._segments = load_segments(self.settings)
            except TailormailError as error:
                log.error("segment definitions not reloaded: %s", error)
            self._signature = signature
        return self._segments

    def _behind(self, state: dict[str, dict[str, Any]]) -> bool:
        """Whether a refreshed rule (``state``) is not one of the loaded definitions."""
        loaded = self._segments
        for name, row in state.items():
            segment = loaded.get(name)
            if segment is None or segment.rule_hash != row.get("rule_hash"):
                return True
        return False


def active_segments(conn: Connection, segments: dict[str, Segment]) -> list[Segment]:
    """Segments whose current rule has been refreshed in full (the baseline real time updates)."""
    return _active(q.states(conn), segments)


def _active(state: dict[str, dict[str, Any]], segments: dict[str, Segment]) -> list[Segment]:
    return [s for s in segments.values() if s.active and state.get(s.name, {}).get("rule_hash") == s.rule_hash]


@dataclass
class Batch:
    """A batch of new events as real time reads it: (profile id, event, ts), by event name, seen range."""

    events: list[tuple[int, str | None, int]]
    by_name: dict[str | None, list[tuple[int, int]]] = field(default_factory=dict)
    seen: dict[int, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, stored: Sequence[StoredEvent]) -> Batch:
        """Index a batch of stored events once for every segment."""
        batch = cls([(item.profile_id, item.message.event, item.message.timestamp) for item in stored])
        by_name, seen = batch.by_name, batch.seen
        for pid, name, ts in batch.events:
            found = by_name.get(name)
            if found is None:
                by_name[name] = [(pid, ts)]
            else:
                found.append((pid, ts))
            span = seen.get(pid)
            if span is None:
                seen[pid] = (ts, ts)
            elif ts < span[0] or ts > span[1]:  # most people's events of a batch share one time
                seen[pid] = (min(span[0], ts), max(span[1], ts))
        return batch


def affected_profiles(segment: Segment, batch: Batch, touched: set[int], clocks: Clocks, now_ms: int) -> set[int]:
    """The people of a batch whose membership in ``segment`` the batch can change now.

    ``touched``: profiles created, merged or given traits by the batch; any
    segment may move for them (a new profile already matches "not ..." rules).
    Otherwise only an event inside one of the rule's windows counts, or a
    first/last seen time the batch moved; events that count only later (an add
    to cart stamped now, for a rule about carts older than a day) are left to
    the scheduled rechecks.
    """
    deps = dependencies(segment.rule)
    out = set(touched)
    for name, spans in deps.events.items():
        items = batch.by_name.get(name)
        for lo, hi in (span.bounds(now_ms) for span in spans) if items else ():
            out.update(pid for pid, ts in items or () if lo < ts <= hi)
    if deps.profile_columns:
        first_moved = "first_seen" in deps.profile_columns
        last_moved = "last_seen" in deps.profile_columns
        for pid, (lo_ts, hi_ts) in batch.seen.items():
            _, first, last = clocks.get(pid, (0, None, None))
            if (first_moved and first == lo_ts) or (last_moved and last == hi_ts):
                out.add(pid)
    return out


def on_events(
    conn: Connection,
    segments: dict[str, Segment],
    stored: Sequence[StoredEvent],
    now_ms: int,
    settings: Settings,
    state: dict[str, dict[str, Any]] | None = None,
) -> list[Diff]:
    """Bring memberships up to date with a batch, inside its transaction; write enters, exits and rechecks.

    Set-based: one read of the batch's profiles, then each affected segment is
    evaluated once for all the people it may move (one query), memberships of
    everyone are read once, and all changes and new rechecks are written with
    a few statements.  ``state``: the segments' refresh state, when the caller
    has read it in this transaction.
    """
    active = _active(q.states(conn) if state is None else state, segments)
    if not active or not stored:
        return []
    batch = Batch.of(stored)
    clocks = q.profile_clocks(conn, batch.seen)
    touched = {pid for pid, (updated, _, _) in clocks.items() if updated == now_ms}
    work = [(segment, affected_profiles(segment, batch, touched, clocks, now_ms)) for segment in active]
    diffs = reevaluate_many(conn, work, now_ms, source="realtime", settings=settings)
    schedule_batch(conn, active, batch.by_name, batch.seen, clocks, touched, now_ms, settings.timezone)
    return diffs


def make_hook(settings: Settings) -> Callable[[Connection, Sequence[StoredEvent], int], None]:
    """The ingest hook of a workspace (registered in runtime.ingest_hooks).

    Call it once per batch, inside the transaction that stores the batch (or
    right after it commits, with a new transaction), with every new event of
    the batch: it needs each event's ``profile_id`` and ``message.event`` /
    ``message.timestamp``, and profiles already resolved and stamped.
    """
    catalog = Catalog(settings, Throttle())

    def segments_hook(conn: Connection, stored: Sequence[StoredEvent], now_ms: int) -> None:
        state = q.states(conn)
        on_events(conn, catalog.segments(state), stored, now_ms, settings, state)

    return segments_hook


def apply_due_rechecks(store: Store, catalog: Catalog, now_ms: int) -> int:
    """Re-evaluate everyone whose recheck is due or whose event moments passed; return how many people."""
    done = 0
    while True:
        with store.begin() as conn:
            state = q.states(conn)
            active = {s.name: s for s in _active(state, catalog.segments())}
            due = q.due_rechecks(conn, now_ms)
            passed, behind = scan_passed_moments(conn, list(active.values()), state, now_ms)
            for name in sorted(set(due) | set(passed)):
                ids = due.get(name, set()) | passed.get(name, set())
                if name in active:
                    reevaluate(conn, active[name], ids, now_ms, source="recheck", settings=catalog.settings)
                else:
                    q.clear_rechecks(conn, name, ids)
                done += len(ids)
        if not due and not behind:
            return done


SCAN_SLICE_MS = 3_600_000
"""A scan covers at most this much time, or a quarter of the backlog (a worker that was down catches up in steps)."""


def scan_passed_moments(
    conn: Connection, segments: Sequence[Segment], state: dict[str, dict[str, Any]], now_ms: int
) -> tuple[dict[str, set[int]], bool]:
    """People whose event moments (``ts + offset``) passed since each segment's last scan; moves the marks on.

    One range of the (event, ts) index per (event, offset) the segments share;
    segments scanned up to the same moment are scanned together.  Returns the
    people by segment and whether some mark is still behind ``now_ms``.
    """
    groups: dict[int, list[Segment]] = {}
    for segment in segments:
        row = state[segment.name]
        since = row.get("scanned_until") or row["refreshed_at"]
        if since < now_ms:
            groups.setdefault(int(since), []).append(segment)
    out: dict[str, set[int]] = {}
    behind = False
    for since, group in sorted(groups.items()):
        until = min(now_ms, since + max(SCAN_SLICE_MS, (now_ms - since) // 4))
        behind = behind or until < now_ms
        pairs = sorted({(e, o) for s in group for e, offsets in scanned_offsets(s.rule).items() for o in offsets})
        found = {(e, o): q.passed_event_moments(conn, e, o, since, until) for e, o in pairs}
        for segment in group:
            ids: set[int] = set()
            for event, offsets in scanned_offsets(segment.rule).items():
                for offset in offsets:
                    ids |= found[(event, offset)]
            if ids:
                out[segment.name] = ids
        q.set_scanned_until(conn, [s.name for s in group], until)
    return out, behind


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


def reevaluate_user(store: Store, settings: Settings, user_id: str, now_ms: int) -> list[Diff]:
    """After a change outside ingest (traits edited through the API): every active segment for that person."""
    segments = load_segments(settings)
    with store.begin() as conn:
        pid = profile_q.profile_ids_by_user(conn, [user_id]).get(user_id)
        if pid is None:
            return []
        return [
            reevaluate(conn, s, [pid], now_ms, source="realtime", settings=settings)
            for s in active_segments(conn, segments)
        ]
