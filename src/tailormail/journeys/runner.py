"""The journey runner: events and timers in, persisted runs and side effects out.

Every decision is the pure ``engine.step``; this module only reads what a step
needs, applies what it decided, and does both inside the caller's
transaction, so an email goes to the outbox in the same commit as the step
that decided it (the ``Effects`` do the writing).  The runs a transaction
steps (an ingested batch, the timers due together) share one ``StepBatch``:
their reads and writes are a few statements per batch, and the emails of one
send node go out as one render batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from tailormail.ingest.pipeline import StoredEvent
from tailormail.journeys import engine as e
from tailormail.journeys import model as m
from tailormail.journeys.batch import PersonFacts, SendGroup, StepBatch, group_runs, node_of, shared_step
from tailormail.journeys.batch import flush as flush
from tailormail.journeys.filters import MISSING, lookup, matches
from tailormail.segments import rules as r
from tailormail.segments.evaluate import matching_profiles
from tailormail.segments.membership import Diff
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


class BatchEffects(Effects, Protocol):
    """Effects that render one send node's emails for many runs at once (``OutboxEffects``)."""

    def send_many(
        self,
        conn: Connection,
        journey: m.Journey,
        items: Sequence[tuple[dict[str, Any], e.SendEmail]],
        now_ms: int,
    ) -> None:
        """Render and enqueue the emails of one node (one template and subject variant) for these runs."""
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


@dataclass(frozen=True)
class EventIndex:
    """A runner's journeys by the event names that can start, end or resume their runs (built once per runner)."""

    starts: dict[str, tuple[m.Journey, ...]]
    goals: dict[str, tuple[m.Journey, ...]]
    awaited: frozenset[str] = frozenset()
    """Events some ``wait_for`` node waits for."""

    @classmethod
    def of(cls, journeys: Iterable[m.Journey]) -> EventIndex:
        """Index journeys in their order."""
        starts: dict[str, list[m.Journey]] = {}
        goals: dict[str, list[m.Journey]] = {}
        awaited: set[str] = set()
        for journey in journeys:
            entry = journey.entry
            if isinstance(entry, m.EventEntry):
                starts.setdefault(entry.event, []).append(journey)
            if journey.goal is not None:
                goals.setdefault(journey.goal, []).append(journey)
            awaited.update(node.event for node in journey.nodes.values() if isinstance(node, m.WaitFor))
        return cls(
            {k: tuple(v) for k, v in starts.items()}, {k: tuple(v) for k, v in goals.items()}, frozenset(awaited)
        )

    def names(self) -> frozenset[str]:
        """Every event name this index reacts to."""
        return frozenset(self.starts) | frozenset(self.goals) | self.awaited


ENTER_BATCH = 500
"""People entered per batch by ``enter_many`` (their emails render together, as campaigns' batches do)."""

TIMER_BATCH = 500
"""Due timers one transaction wakes (the worker takes batch after batch while more are due)."""


@dataclass
class JourneyRunner:
    """Starts, advances and ends runs of the workspace's journeys."""

    journeys: dict[str, m.Journey]
    effects: Effects
    policy: e.SendPolicy = field(default_factory=e.SendPolicy)
    timezone: str = "UTC"
    ignore_reentry: bool = False
    """Waive the re-entry window (dry runs: the person's real runs are set aside, their past entries ignored)."""
    dry: bool = False
    """A dry run: the frequency cap counts the run log's planned sends (nothing is in the outbox)."""
    _index: EventIndex | None = field(default=None, init=False, repr=False)
    _reacts_to: frozenset[str] | None = field(default=None, init=False, repr=False)

    @property
    def index(self) -> EventIndex:
        """The journeys by the events that start or end their runs."""
        if self._index is None:
            self._index = EventIndex.of(self.journeys.values())
        return self._index

    def _batch(self, conn: Connection, now_ms: int, people: Iterable[int], may_start: int = 1) -> StepBatch:
        return StepBatch(
            conn, now_ms, set(people), self._send_group, timezone=self.timezone, dry=self.dry, may_start=may_start
        )

    # --- the ingest path ---------------------------------------------------------

    def on_events(self, conn: Connection, stored: Sequence[StoredEvent], now_ms: int) -> None:
        """React to newly stored events: goals end runs, awaited events resume them, triggers start them."""
        if not self.journeys:
            return
        reacts_to = self.reacts_to(conn)
        tracked = [ev for ev in stored if ev.message.type == "track" and ev.message.event in reacts_to]
        if not tracked:  # nobody's runs can start, end or resume: no reads at all
            return
        paused = q.paused_journeys(conn)
        people = {ev.profile_id for ev in tracked}
        index = self.index
        starting = [ev for ev in tracked if ev.message.event in index.starts]
        may_start = sum(len(index.starts[ev.message.event or ""]) for ev in starting)
        with self._batch(conn, now_ms, people, may_start) as batch:
            batch.live = group_runs(q.live_runs_of(conn, people))
            self._read_last_entries(batch, starting)
            for event in tracked:
                self._on_event(batch, event, paused)

    def reacts_to(self, conn: Connection) -> frozenset[str]:
        """Event names that can start, end or resume a run; other events are skipped before any read.

        Besides the names in the definitions, the names stored runs wait for
        (read once per runner, that is once per change of the journey files): a
        run parked before its journey was edited keeps waiting for the old name,
        and it resumes on it as before.  Runs written afterwards by this runner
        wait for names of its own definitions.
        """
        if self._reacts_to is None:
            self._reacts_to = self.index.names() | q.awaited_events(conn)
        return self._reacts_to

    def _on_event(self, batch: StepBatch, event: StoredEvent, paused: set[str]) -> None:
        name, props, pid = event.message.event, event.message.properties, event.profile_id
        assert name is not None
        index = self.index
        reached = [j.name for j in index.goals.get(name, ()) if not j.goal_where or matches(j.goal_where, props)]
        runs = batch.live.get(pid, ())
        if reached and runs:
            for run in [run for run in runs if run["journey"] in reached]:
                self._finish(batch, run, "goal")
        for run in [run for run in batch.live.get(pid, ()) if run["waiting_for"] == name]:
            journey = self.journeys.get(run["journey"])
            node = node_of(journey, run)
            if journey is None or run["status"] != "waiting" or journey.name in paused:
                continue
            if isinstance(node, m.WaitFor) and matches(node.where, props):
                batch.cancel_timers(run)
                batch.update(run, waiting_for=None, status="active")
                batch.log(run, run["position"], "received", {"event": name})
                self._advance(batch, journey, run, run["on_event"])
        for journey in index.starts.get(name, ()):
            if journey.name not in paused and _triggers(journey.entry, name, props):
                self._enter(batch, journey, pid, props)

    def _read_last_entries(self, batch: StepBatch, starting: Sequence[StoredEvent]) -> None:
        """Last entries of the (journey, person) pairs the batch's entry events will ask about, in one query.

        A person with a run of the journey going is refused before the last
        entry matters, so those pairs are left out (in a busy shop, most repeat
        buyers' post-purchase runs are still waiting); a run that ends earlier
        in the batch makes ``last_entry`` read its pair alone.
        """
        pairs: dict[str, set[int]] = {}
        starts, live = self.index.starts, batch.live
        for ev in starting:
            runs = live.get(ev.profile_id)
            for journey in starts[ev.message.event or ""]:
                if runs is None or all(run["journey"] != journey.name for run in runs):
                    pairs.setdefault(journey.name, set()).add(ev.profile_id)
        if pairs:
            batch.read_last(list(pairs), set().union(*pairs.values()))

    # --- segment entries -----------------------------------------------------------

    def on_segment_changes(self, conn: Connection, diffs: Sequence[Diff], now_ms: int) -> list[int]:
        """Start runs of journeys entered on a segment change, in the transaction that wrote the change.

        ``diffs`` come from the segments code (real time, rechecks, refreshes); each
        person who entered (or left) a journey's segment enters it if re-entry allows.
        """
        paused = q.paused_journeys(conn)
        started: list[int] = []
        for journey in self.journeys.values():
            entry = journey.entry
            if not isinstance(entry, m.SegmentEntry) or journey.name in paused:
                continue
            for diff in diffs:
                if diff.segment == entry.segment:
                    people = diff.entered if entry.on == "entered" else diff.exited
                    if people:
                        trigger = {"segment": diff.segment, "change": entry.on}
                        started += self.enter_many(conn, journey, sorted(people), trigger, now_ms)
        return started

    # --- entering and advancing --------------------------------------------------------

    def enter(
        self, conn: Connection, journey: m.Journey, profile_id: int, trigger: dict[str, Any], now_ms: int
    ) -> int | None:
        """Start a run if re-entry rules allow; return its id (None: not allowed now)."""
        started = self.enter_many(conn, journey, [profile_id], trigger, now_ms)
        return started[0] if started else None

    def enter_many(
        self, conn: Connection, journey: m.Journey, profile_ids: Sequence[int], trigger: dict[str, Any], now_ms: int
    ) -> list[int]:
        """Start a run for each of these people whom re-entry rules allow now; return the new runs' ids."""
        everyone = list(dict.fromkeys(profile_ids))
        runs: list[int | None] = []
        for start in range(0, len(everyone), ENTER_BATCH):  # a broadcast's million people: memory stays bounded
            people = everyone[start : start + ENTER_BATCH]
            with self._batch(conn, now_ms, people, len(people)) as batch:
                batch.live = group_runs(q.live_runs_of(conn, people))
                batch.read_last([journey.name], people)
                runs += [self._enter(batch, journey, pid, trigger) for pid in people]
        return [run for run in runs if run is not None]

    def _enter(self, batch: StepBatch, journey: m.Journey, profile_id: int, trigger: dict[str, Any]) -> int | None:
        if any(run["journey"] == journey.name for run in batch.live.get(profile_id, ())):
            return None  # running: the last entry does not matter (and may not have been read)
        if not self.ignore_reentry and self._too_soon(batch, journey, profile_id):
            return None
        run = batch.start_run(journey.name, profile_id, trigger)
        batch.log(run, None, "entered", {})
        self._advance(batch, journey, run, journey.start)
        return int(run["id"])

    def _too_soon(self, batch: StepBatch, journey: m.Journey, profile_id: int) -> bool:
        last = batch.last_entry(journey.name, profile_id)
        return last is not None and (journey.reentry_ms is None or batch.now_ms - last < journey.reentry_ms)

    def _advance(self, batch: StepBatch, journey: m.Journey, run: dict[str, Any], node: str | None) -> None:
        """Step a run from ``node`` and apply what the step decided."""
        result = batch.steps.get((journey.name, node))
        if result is None:
            facts = PersonFacts(batch, run["profile_id"])
            result = e.step(
                journey, run["id"], run["profile_id"], node, batch.now_ms, facts, self.policy, run["attempt"]
            )
            if shared_step(result, facts):  # the same for every run at this node now: step once per batch
                batch.steps[(journey.name, node)] = result
        for action in result.actions:
            self._apply(batch, journey, run, action)
        if not result.finished:
            batch.update(run, status="waiting", position=result.position)

    def _apply(self, batch: StepBatch, journey: m.Journey, run: dict[str, Any], action: e.Action) -> None:
        if isinstance(action, e.Passed):
            batch.log(run, action.node, "passed", {})
        elif isinstance(action, e.Sleep):
            batch.add_timer(run, action.due_ms, action.resume, "wake")
        elif isinstance(action, e.SendEmail):
            batch.queue_send(run, action)
            detail = {
                "template": action.template,
                "key": action.key,
                "kind": journey.kind,
                "variant": action.subject_variant,
            }
            batch.log(run, action.node, "send", detail)
        elif isinstance(action, e.Skipped):
            batch.log(run, action.node, "skipped", {"reason": action.reason})
        elif isinstance(action, e.AwaitEvent):
            batch.update(run, waiting_for=action.event, on_event=action.on_event, on_timeout=action.on_timeout)
            batch.add_timer(run, action.timeout_ms, action.on_timeout, "timeout")
        elif isinstance(action, e.Assigned):
            batch.log(run, action.node, "assigned", {"arm": action.arm})
        elif isinstance(action, e.SetTraits):
            batch.set_traits(run["profile_id"], action.traits)
        elif isinstance(action, e.CallWebhook):
            batch.flush_rows()
            self.effects.webhook(batch.conn, journey, run, action, batch.now_ms)
            batch.log(run, action.node, "webhook", {"url": action.url, "key": action.key})
        elif isinstance(action, e.Finished):
            self._finish(batch, run, action.reason)

    def _finish(self, batch: StepBatch, run: dict[str, Any], reason: str) -> None:
        batch.cancel_timers(run)
        batch.update(run, status="done", finished_at=batch.now_ms, finish_reason=reason, waiting_for=None)
        batch.log(run, run.get("position"), "finished", {"reason": reason})

    def _send_group(
        self, conn: Connection, now_ms: int, group: SendGroup, items: list[tuple[dict[str, Any], e.SendEmail]]
    ) -> None:
        """Render one node's emails: as one batch when the effects can, else one by one."""
        journey = self.journeys[group[0]]
        send_many = getattr(self.effects, "send_many", None)
        if send_many is not None:
            send_many(conn, journey, items, now_ms)
            return
        for run, action in items:
            self.effects.send(conn, journey, run, action, now_ms)

    # --- timers --------------------------------------------------------------------

    def fire_due_timers(
        self, conn: Connection, now_ms: int, limit: int = TIMER_BATCH, only_runs: Sequence[int] | None = None
    ) -> int:
        """Wake the runs whose timers are due (of ``only_runs`` when given); return how many fired."""
        # A paused journey's timers stay pending; they fire on the first tick after resume.
        timers = q.claim_due_timers(conn, now_ms, limit, skip_journeys=q.paused_journeys(conn), only_runs=only_runs)
        if not timers:
            return 0
        runs = q.get_runs(conn, [t["run_id"] for t in timers])
        with self._batch(conn, now_ms, {t["profile_id"] for t in timers}) as batch:
            for timer in timers:
                run = runs.get(timer["run_id"])  # one dict per run: a second timer of it sees the first's changes
                journey = self.journeys.get(run["journey"]) if run else None
                if run is None or journey is None or run["status"] == "done":
                    continue
                if isinstance(node_of(journey, run), m.Wait):
                    batch.log(run, run["position"], "passed", {})
                if timer["kind"] == "timeout":
                    batch.update(run, waiting_for=None, status="active")
                    batch.log(run, run["position"], "timed_out", {})
                self._advance(batch, journey, run, timer["resume"])
        return len(timers)


def _triggers(entry: m.Entry, event: str, properties: dict[str, Any]) -> bool:
    """Whether one event starts a run of a journey with this entry."""
    if isinstance(entry, m.EventEntry):
        return entry.event == event and (not entry.where or matches(entry.where, properties))
    return False  # segment entries start from on_segment_changes, not from events
