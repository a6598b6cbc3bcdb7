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
        paused = q.paused_journeys(conn) if self.journeys else set()
        for event in stored:
            message = event.message
            if message.type != "track" or message.event is None:
                continue
            self._goals(conn, event, now_ms)
            self._awaited(conn, event, now_ms, paused)
            for journey in self.journeys.values():
                if journey.name not in paused and _triggers(journey.entry, message.event, message.properties):
                    self.enter(conn, journey, event.profile_id, message.properties, now_ms)

    def _goals(self, conn: Connection, event: StoredEvent, now_ms: int) -> None:
        name, props = event.message.event, event.message.properties
        reached = [j.name for j in self.journeys.values() if j.goal == name and matches(j.goal_where, props)]
        if reached:
            for run in q.active_runs(conn, reached, event.profile_id):
                self._finish(conn, run, "goal", now_ms)

    def _awaited(self, conn: Connection, event: StoredEvent, now_ms: int, paused: set[str]) -> None:
        assert event.message.event is not None
        for run in q.runs_waiting_for(conn, event.message.event, event.profile_id):
            journey = self.journeys.get(run["journey"])
            node = journey.nodes.get(run["position"] or "") if journey else None
            if journey is None or run["journey"] in paused or not isinstance(node, m.WaitFor):
                continue
            if matches(node.where, event.message.properties):
                q.cancel_timers(conn, run["id"], now_ms)
                q.update_run(conn, run["id"], now_ms, waiting_for=None, status="active")
                self._log(conn, run, run["position"], "received", {"event": event.message.event}, now_ms)
                self.advance(conn, journey, {**run, "waiting_for": None}, run["on_event"], now_ms)

    # --- entering and advancing --------------------------------------------------------

    def enter(
        self, conn: Connection, journey: m.Journey, profile_id: int, trigger: dict[str, Any], now_ms: int
    ) -> int | None:
        """Start a run if re-entry rules allow; return its id (None: not allowed now)."""
        last, running = q.last_entry(conn, journey.name, profile_id)
        if running or (last is not None and (journey.reentry_ms is None or now_ms - last < journey.reentry_ms)):
            return None
        run_id = q.create_run(conn, journey.name, profile_id, trigger, now_ms)
        run = q.get_run(conn, run_id)
        assert run is not None
        self._log(conn, run, None, "entered", {}, now_ms)
        self.advance(conn, journey, run, journey.start, now_ms)
        return run_id

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
            q.update_run(conn, run["id"], now_ms, status=status, position=result.position)
        return result

    def _apply(self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.Action, now_ms: int) -> None:
        if isinstance(action, e.Passed):
            self._log(conn, run, action.node, "passed", {}, now_ms)
        elif isinstance(action, e.SendEmail):
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
            q.add_timer(conn, run["id"], run["profile_id"], action.due_ms, action.resume, "wake")
        elif isinstance(action, e.AwaitEvent):
            q.update_run(
                conn,
                run["id"],
                now_ms,
                waiting_for=action.event,
                on_event=action.on_event,
                on_timeout=action.on_timeout,
            )
            q.add_timer(conn, run["id"], run["profile_id"], action.timeout_ms, action.on_timeout, "timeout")
        elif isinstance(action, e.Assigned):
            self._log(conn, run, action.node, "assigned", {"arm": action.arm}, now_ms)
        elif isinstance(action, e.SetTraits):
            current = profile_q.traits_of(conn, [run["profile_id"]]).get(run["profile_id"], {})
            profile_q.set_traits(conn, run["profile_id"], {**current, **action.traits}, now_ms)
        elif isinstance(action, e.CallWebhook):
            self.effects.webhook(conn, journey, run, action, now_ms)
            self._log(conn, run, action.node, "webhook", {"url": action.url, "key": action.key}, now_ms)
        elif isinstance(action, e.Finished):
            self._finish(conn, run, action.reason, now_ms)

    def _finish(self, conn: Connection, run: dict[str, Any], reason: str, now_ms: int) -> None:
        q.cancel_timers(conn, run["id"], now_ms)
        q.update_run(conn, run["id"], now_ms, status="done", finished_at=now_ms, finish_reason=reason, waiting_for=None)
        self._log(conn, run, run.get("position"), "finished", {"reason": reason}, now_ms)

    def _log(
        self, conn: Connection, run: dict[str, Any], node: str | None, action: str, detail: dict[str, Any], now_ms: int
    ) -> None:
        q.log(
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
                q.update_run(conn, run["id"], now_ms, waiting_for=None, status="active")
                self._log(conn, run, run["position"], "timed_out", {}, now_ms)
            self.advance(conn, journey, run, timer["resume"], now_ms)
        return len(timers)


def _triggers(entry: m.Entry, event: str, properties: dict[str, Any]) -> bool:
    """Whether one event starts a run of a journey with this entry."""
    if isinstance(entry, m.EventEntry):
        return entry.event == event and matches(entry.where, properties)
    if isinstance(entry, m.SegmentEntry):
        return event == f"segment_{entry.on}" and properties.get("segment") == entry.segment
    return False
