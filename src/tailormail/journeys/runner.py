"""The journey runner: events and timers in, persisted runs and side effects out.

Every decision is the pure ``engine.step``; this module only reads what a step
needs (``StoreFacts``), applies what it decided, and does both inside the
caller's transaction, so an email goes to the outbox in the same commit as
the step that decided it (the ``Effects`` do the writing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from tailormail.ingest.pipeline import StoredEvent
from tailormail.journeys import engine as e
from tailormail.journeys import model as m
from tailormail.journeys.filters import MISSING, lookup, matches
from tailormail.segments import rules as r
from tailormail.segments.evaluate import matching_profiles
from tailormail.store import deliver as deliver_q
from tailormail.store import journeys as q
from tailormail.store import profiles as profile_q


class Effects(Protocol):
    """What a run does to the world, written inside the step's transaction."""

    def send(self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.SendEmail, now_ms: int) -> None:
        """Render the template for the person and put it in the outbox."""
        ...

    def webhook(
        self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.CallWebhook, now_ms: int
    ) -> None:
        """Queue an outbound webhook."""
        ...


@dataclass
class StoreFacts:
    """Answers a step's questions about one person from the database."""

    conn: Connection
    profile_id: int
    now_ms: int
    workspace_timezone: str = "UTC"
    count_logged_sends: bool = False
    """Count the run log's sends too (dry runs, which write no outbox rows)."""
    _traits: dict[str, Any] | None = None

    def _all_traits(self) -> dict[str, Any]:
        if self._traits is None:
            self._traits = profile_q.traits_of(self.conn, [self.profile_id]).get(self.profile_id, {})
        return self._traits

    def holds(self, rule: r.Condition) -> bool:
        """Evaluate a segment-language rule for this person now."""
        flush(self.conn)
        return self.profile_id in matching_profiles(self.conn, rule, now_ms=self.now_ms, profile_ids=[self.profile_id])

    def timezone(self) -> str:
        """The person's timezone trait, else the workspace's."""
        tz = self._all_traits().get("timezone")
        return tz if isinstance(tz, str) and tz else self.workspace_timezone

    def trait(self, path: tuple[str, ...]) -> Any:
        """A trait value (None when absent)."""
        value = lookup(self._all_traits(), path)
        return None if value is MISSING else value

    def marketing_sent_since(self, since_ms: int) -> int:
        """Marketing emails queued or sent to this person since then, by any journey or campaign."""
        flush(self.conn)  # sends earlier in the batch count
        queued = deliver_q.marketing_counts(self.conn, [self.profile_id], since_ms).get(self.profile_id, 0)
        # A dry run puts nothing in the outbox: its own planned sends are in the run log.
        return queued + (q.sends_since(self.conn, self.profile_id, since_ms) if self.count_logged_sends else 0)

    def suppressed(self) -> bool:
        """Whether the person unsubscribed (the trait) or their address is on the suppression list."""
        traits = self._all_traits()
        if traits.get("unsubscribed"):
            return True
        email = str(traits.get("email") or "").strip().lower()
        return bool(email) and bool(deliver_q.suppressed_among(self.conn, [email]))


@dataclass
class JourneyRunner:
    """Starts, advances and ends runs of the workspace's journeys."""

    journeys: dict[str, m.Journey]
    effects: Effects
    policy: e.SendPolicy = field(default_factory=e.SendPolicy)
    timezone: str = "UTC"
    ignore_reentry: bool = False
    """Dry runs start a run even if the person already has one."""
    dry: bool = False
    """A dry run: the frequency cap counts the run log's planned sends (nothing is in the outbox)."""

    # --- the ingest path ---------------------------------------------------------

    def on_events(self, conn: Connection, stored: Sequence[StoredEvent], now_ms: int) -> None:
        """React to newly stored events: goals end runs, awaited events resume them, triggers start them."""
        tracked = [ev for ev in stored if ev.message.type == "track" and ev.message.event is not None]
        if not self.journeys or not tracked:
            return
        paused = q.paused_journeys(conn)
        runs = BatchRuns.read(conn, self._event_journeys(), {ev.profile_id for ev in tracked})
        conn.info[_PENDING] = PendingWrites()
        try:
            self._on_tracked(conn, tracked, now_ms, paused, runs)
            flush(conn)
        finally:
            conn.info.pop(_PENDING, None)

    def _on_tracked(
        self, conn: Connection, tracked: list[StoredEvent], now_ms: int, paused: set[str], runs: BatchRuns
    ) -> None:
        for event in tracked:
            message = event.message
            assert message.event is not None
            self._goals(conn, event, now_ms, runs)
            self._awaited(conn, event, now_ms, paused, runs)
            for journey in self.journeys.values():
                if journey.name not in paused and _triggers(journey.entry, message.event, message.properties):
                    self.enter(conn, journey, event.profile_id, message.properties, now_ms, runs=runs)

    def _event_journeys(self) -> list[str]:
        """Journeys an event can start (event or segment entries)."""
        return [j.name for j in self.journeys.values() if isinstance(j.entry, (m.EventEntry, m.SegmentEntry))]

    def _goals(self, conn: Connection, event: StoredEvent, now_ms: int, runs: BatchRuns) -> None:
        name, props = event.message.event, event.message.properties
        reached = [j.name for j in self.journeys.values() if j.goal == name and matches(j.goal_where, props)]
        if reached:
            for run in runs.active_runs(conn, reached, event.profile_id):
                runs.changed.add(event.profile_id)
                self._finish(conn, run, "goal", now_ms)

    def _awaited(self, conn: Connection, event: StoredEvent, now_ms: int, paused: set[str], runs: BatchRuns) -> None:
        assert event.message.event is not None
        for run in runs.waiting_for(conn, event.message.event, event.profile_id):
            journey = self.journeys.get(run["journey"])
            node = journey.nodes.get(run["position"] or "") if journey else None
            if journey is None or run["journey"] in paused or not isinstance(node, m.WaitFor):
                continue
            if matches(node.where, event.message.properties):
                runs.changed.add(event.profile_id)
                _cancel_timers(conn, run["id"], now_ms)
                _update_run(conn, run["id"], now_ms, waiting_for=None, status="active")
                self._log(conn, run, run["position"], "received", {"event": event.message.event}, now_ms)
                self.advance(conn, journey, {**run, "waiting_for": None}, run["on_event"], now_ms)

    # --- entering and advancing --------------------------------------------------------

    def enter(
        self,
        conn: Connection,
        journey: m.Journey,
        profile_id: int,
        trigger: dict[str, Any],
        now_ms: int,
        *,
        runs: BatchRuns | None = None,
    ) -> int | None:
        """Start a run if re-entry rules allow; return its id (None: not allowed now)."""
        if runs is None:
            last, running = q.last_entry(conn, journey.name, profile_id)
        else:
            last, running = runs.last_entry(conn, journey.name, profile_id)
        if running or (last is not None and (journey.reentry_ms is None or now_ms - last < journey.reentry_ms)):
            return None
        if runs is not None:
            runs.changed.add(profile_id)
        run = _create_run(conn, journey.name, profile_id, trigger, now_ms)
        self._log(conn, run, None, "entered", {}, now_ms)
        self.advance(conn, journey, run, journey.start, now_ms)
        return int(run["id"])

    def advance(
        self, conn: Connection, journey: m.Journey, run: dict[str, Any], node: str | None, now_ms: int
    ) -> e.Step:
        """Step a run from ``node`` and apply what the step decided."""
        facts = StoreFacts(conn, run["profile_id"], now_ms, self.timezone, count_logged_sends=self.dry)
        result = e.step(journey, run["id"], run["profile_id"], node, now_ms, facts, self.policy, run["attempt"])
        for action in result.actions:
            self._apply(conn, journey, run, action, now_ms)
        if not result.finished:
            status = "waiting"
            _update_run(conn, run["id"], now_ms, status=status, position=result.position)
        return result

    def _apply(self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.Action, now_ms: int) -> None:
        if isinstance(action, e.Passed):
            self._log(conn, run, action.node, "passed", {}, now_ms)
        elif isinstance(action, e.SendEmail):
            flush(conn)  # effects may read what the run wrote so far
            self.effects.send(conn, journey, run, action, now_ms)
            detail = {
                "template": action.template,
                "key": action.key,
                "kind": journey.kind,
                "variant": action.subject_variant,
            }
            self._log(conn, run, action.node, "send", detail, now_ms)
        elif isinstance(action, e.Skipped):
            self._log(conn, run, action.node, "skipped", {"reason": action.reason}, now_ms)
        elif isinstance(action, e.Sleep):
            _add_timer(conn, run["id"], run["profile_id"], action.due_ms, action.resume, "wake")
        elif isinstance(action, e.AwaitEvent):
            _update_run(
                conn,
                run["id"],
                now_ms,
                waiting_for=action.event,
                on_event=action.on_event,
                on_timeout=action.on_timeout,
            )
            _add_timer(conn, run["id"], run["profile_id"], action.timeout_ms, action.on_timeout, "timeout")
        elif isinstance(action, e.Assigned):
            self._log(conn, run, action.node, "assigned", {"arm": action.arm}, now_ms)
        elif isinstance(action, e.SetTraits):
            current = profile_q.traits_of(conn, [run["profile_id"]]).get(run["profile_id"], {})
            profile_q.set_traits(conn, run["profile_id"], {**current, **action.traits}, now_ms)
        elif isinstance(action, e.CallWebhook):
            flush(conn)
            self.effects.webhook(conn, journey, run, action, now_ms)
            self._log(conn, run, action.node, "webhook", {"url": action.url, "key": action.key}, now_ms)
        elif isinstance(action, e.Finished):
            self._finish(conn, run, action.reason, now_ms)

    def _finish(self, conn: Connection, run: dict[str, Any], reason: str, now_ms: int) -> None:
        _cancel_timers(conn, run["id"], now_ms)
        _update_run(conn, run["id"], now_ms, status="done", finished_at=now_ms, finish_reason=reason, waiting_for=None)
        self._log(conn, run, run.get("position"), "finished", {"reason": reason}, now_ms)

    def _log(
        self, conn: Connection, run: dict[str, Any], node: str | None, action: str, detail: dict[str, Any], now_ms: int
    ) -> None:
        _log_rows(
            conn,
            [
                {
                    "run_id": run["id"],
                    "journey": run["journey"],
                    "profile_id": run["profile_id"],
                    "node": node,
                    "action": action,
                    "detail": detail,
                    "at": now_ms,
                }
            ],
        )

    # --- timers --------------------------------------------------------------------

    def fire_due_timers(
        self, conn: Connection, now_ms: int, limit: int = 500, only_runs: Sequence[int] | None = None
    ) -> int:
        """Wake the runs whose timers are due (of ``only_runs`` when given); return how many fired."""
        # A paused journey's timers stay pending; they fire on the first tick after resume.
        timers = q.claim_due_timers(conn, now_ms, limit, skip_journeys=q.paused_journeys(conn), only_runs=only_runs)
        for timer in timers:
            run = q.get_run(conn, timer["run_id"])
            journey = self.journeys.get(run["journey"]) if run else None
            if run is None or journey is None or run["status"] == "done":
                continue
            if isinstance(journey.nodes.get(run["position"] or ""), m.Wait):
                self._log(conn, run, run["position"], "passed", {}, now_ms)
            if timer["kind"] == "timeout":
                _update_run(conn, run["id"], now_ms, waiting_for=None, status="active")
                self._log(conn, run, run["position"], "timed_out", {}, now_ms)
            self.advance(conn, journey, run, timer["resume"], now_ms)
        return len(timers)


@dataclass
class BatchRuns:
    """The runs of an ingested batch's people, read in two queries instead of a few per event.

    Exact, not a cache that can go stale: once the batch changes a person's
    runs (``changed``), questions about that person go to the database again.
    """

    live: dict[int, list[dict[str, Any]]]
    last: dict[tuple[str, int], int]
    changed: set[int] = field(default_factory=set)

    @classmethod
    def read(cls, conn: Connection, journeys: Sequence[str], profile_ids: set[int]) -> BatchRuns:
        """The live runs and last entries of these people."""
        live: dict[int, list[dict[str, Any]]] = {}
        for run in q.live_runs_of(conn, profile_ids):
            live.setdefault(int(run["profile_id"]), []).append(run)
        return cls(live, q.last_entries(conn, journeys, profile_ids))

    def active_runs(self, conn: Connection, journeys: Sequence[str], profile_id: int) -> list[dict[str, Any]]:
        """``store.journeys.active_runs`` for a person of the batch."""
        if profile_id in self.changed:
            flush(conn)
            return q.active_runs(conn, journeys, profile_id)
        return [run for run in self.live.get(profile_id, []) if run["journey"] in journeys]

    def waiting_for(self, conn: Connection, event: str, profile_id: int) -> list[dict[str, Any]]:
        """``store.journeys.runs_waiting_for`` for a person of the batch."""
        if profile_id in self.changed:
            flush(conn)
            return q.runs_waiting_for(conn, event, profile_id)
        return [r for r in self.live.get(profile_id, []) if r["waiting_for"] == event and r["status"] == "waiting"]

    def last_entry(self, conn: Connection, journey: str, profile_id: int) -> tuple[int | None, bool]:
        """``store.journeys.last_entry`` for a person of the batch."""
        if profile_id in self.changed:
            flush(conn)
            return q.last_entry(conn, journey, profile_id)
        running = any(run["journey"] == journey for run in self.live.get(profile_id, []))
        return self.last.get((journey, profile_id)), running


_PENDING = "tailormail_journey_writes"
"""``conn.info`` key of the writes an ingested batch has not sent yet (the info lives with the transaction)."""


@dataclass
class PendingWrites:
    """Run updates, timers and log lines of one ingested batch, sent as a few executemany statements.

    Only writes nothing reads back before the next ``flush``: every read of the
    journey tables (and every effect) in this module flushes first.
    """

    runs: list[dict[str, Any]] = field(default_factory=list)
    next_run_id: int | None = None
    """SQLite: the id the next new run gets (the batch holds the write lock, so max + 1 is what SQLite would give)."""
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    timers: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)


def flush(conn: Connection) -> None:
    """Send the batch's pending journey writes (no-op outside the ingest hook)."""
    pending: PendingWrites | None = conn.info.get(_PENDING)
    if pending is None:
        return
    if pending.runs:  # first: the updates below may be of these runs
        q.insert_runs(conn, pending.runs)
        pending.runs = []
    if pending.updates:
        q.update_runs(conn, pending.updates)
        pending.updates = {}
    if pending.timers:
        q.add_timers(conn, pending.timers)
        pending.timers = []
    if pending.logs:
        q.log(conn, pending.logs)
        pending.logs = []


def _create_run(
    conn: Connection, journey: str, profile_id: int, trigger: dict[str, Any], now_ms: int
) -> dict[str, Any]:
    pending: PendingWrites | None = conn.info.get(_PENDING)
    if pending is None or conn.dialect.name != "sqlite":
        return q.create_run(conn, journey, profile_id, trigger, now_ms)
    if pending.next_run_id is None:
        pending.next_run_id = q.max_run_id(conn) + 1
    run = q.run_row(journey, profile_id, dict(trigger), now_ms, run_id=pending.next_run_id)
    pending.next_run_id += 1
    pending.runs.append(run)
    return dict(run)


def _update_run(conn: Connection, run_id: int, now_ms: int, **values: Any) -> None:
    pending: PendingWrites | None = conn.info.get(_PENDING)
    if pending is None:
        q.update_run(conn, run_id, now_ms, **values)
    else:  # later changes of the same run win, as they would statement by statement
        pending.updates.setdefault(run_id, {}).update(values, updated_at=now_ms)


def _add_timer(conn: Connection, run_id: int, profile_id: int, due_ms: int, resume: str | None, kind: str) -> None:
    pending: PendingWrites | None = conn.info.get(_PENDING)
    if pending is None:
        q.add_timer(conn, run_id, profile_id, due_ms, resume, kind)
    else:
        pending.timers.append(q.timer_row(run_id, profile_id, due_ms, resume, kind))


def _cancel_timers(conn: Connection, run_id: int, now_ms: int) -> None:
    flush(conn)
    q.cancel_timers(conn, run_id, now_ms)


def _log_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    pending: PendingWrites | None = conn.info.get(_PENDING)
    if pending is None:
        q.log(conn, rows)
    else:
        pending.logs.extend(rows)


def _triggers(entry: m.Entry, event: str, properties: dict[str, Any]) -> bool:
    """Whether one event starts a run of a journey with this entry."""
    if isinstance(entry, m.EventEntry):
        return entry.event == event and matches(entry.where, properties)
    if isinstance(entry, m.SegmentEntry):
        return event == f"segment_{entry.on}" and properties.get("segment") == entry.segment
    return False
