"""One transaction's journey work: the runs it touches, what it will write, and the facts it asks.

The runner steps many runs per transaction (an ingested batch, the timers due
together).  ``StepBatch`` keeps the runs of the batch's people in memory and
changes them in place, so a later event of a person sees what an earlier one
did without asking the database again; it gathers the new runs, run updates,
timers, timer cancellations, log lines and emails, and writes them with one
statement per table (one send batch per journey node) when the batch ends or
before anything reads them.  The send rules' questions (traits, suppression,
the frequency cap, branch rules) are answered for all the batch's people with
one query each the first time anyone asks; a person whose traits or sends the
batch changed is asked about individually again, so every answer is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from tailormail.journeys import engine as e
from tailormail.journeys import model as m
from tailormail.journeys.filters import MISSING, lookup
from tailormail.segments import rules as r
from tailormail.segments.evaluate import matching_profiles
from tailormail.store import deliver as deliver_q
from tailormail.store import journeys as q
from tailormail.store import profiles as profile_q

_BATCH = "tailormail_journey_batch"
"""``conn.info`` key of the open batch (the info lives with the connection's transaction)."""

SendGroup = tuple[str, str, str, int | None]
"""(journey, node, template, subject variant): the emails one send batch renders."""


def open_batch(conn: Connection) -> StepBatch | None:
    """The batch stepping runs on this connection now, if any."""
    return conn.info.get(_BATCH)


def flush(conn: Connection) -> None:
    """Write the open batch's pending journey rows and emails (no-op without one)."""
    batch = open_batch(conn)
    if batch is not None:
        batch.flush()


@dataclass
class StepBatch:
    """The runs, pending writes and facts of one transaction's journey steps."""

    conn: Connection
    now_ms: int
    people: set[int]
    """Whose facts are loaded together when someone first asks (the batch's people)."""
    send: Callable[[Connection, int, SendGroup, list[tuple[dict[str, Any], e.SendEmail]]], None]
    """(conn, now, group, emails): renders and enqueues one group of emails (the runner's effects)."""
    timezone: str = "UTC"
    dry: bool = False
    may_start: int = 1
    """At most how many runs the batch may start (PostgreSQL reserves that many ids at once, no more)."""
    live: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    """Per person, their runs still going; kept current as the batch changes them."""
    last: dict[tuple[str, int], int] = field(default_factory=dict)
    """(journey, person) -> last entry, kept current as the batch starts runs (``last_entry`` reads it)."""
    last_read: set[tuple[str, int]] = field(default_factory=set)
    """(journey, person) pairs whose last entry was read (absent from ``last``: never entered)."""
    new_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Runs started and not written yet, by id: the row is the run itself, so later changes go in with it."""
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    timers: list[dict[str, Any]] = field(default_factory=list)
    cancelled: set[int] = field(default_factory=set)
    """Runs whose stored pending timers are retired at the next write."""
    logs: list[dict[str, Any]] = field(default_factory=list)
    sends: dict[SendGroup, list[tuple[dict[str, Any], e.SendEmail]]] = field(default_factory=dict)
    sent_to: set[int] = field(default_factory=set)
    """People the batch decided an email for (their cap count is read again)."""
    changed_traits: set[int] = field(default_factory=set)
    steps: dict[tuple[str, str | None], e.Step] = field(default_factory=dict)
    """Steps that asked nothing about the person and decided nothing personal: the same for every run."""
    _timers_of: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    _outer: StepBatch | None = None
    _ids: list[int] = field(default_factory=list)
    _last_id: int = 0
    _traits: dict[int, dict[str, Any]] | None = None
    _listed: set[str] = field(default_factory=set)
    _checked: set[str] | None = None
    _sent: dict[int, dict[int, int]] = field(default_factory=dict)
    _rules: dict[int, set[int]] = field(default_factory=dict)

    def __enter__(self) -> StepBatch:
        self._outer = self.conn.info.get(_BATCH)
        self.conn.info[_BATCH] = self
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        try:
            if kind is None:
                self.flush()
        finally:
            if self._outer is None:
                self.conn.info.pop(_BATCH, None)
            else:  # a batch opened inside another (an effect that ingests): the outer one is open again
                self.conn.info[_BATCH] = self._outer

    # --- runs ------------------------------------------------------------------------

    def start_run(self, journey: str, profile_id: int, trigger: dict[str, Any]) -> dict[str, Any]:
        """A new run (written at the next flush), live at once for the rest of the batch."""
        if not self._ids:
            self._ids = q.reserve_run_ids(self.conn, max(1, self.may_start), after=self._last_id)[::-1]
        self.may_start -= 1
        self._last_id = self._ids.pop()
        run = q.run_row(journey, profile_id, dict(trigger), self.now_ms, run_id=self._last_id)
        self.new_runs[run["id"]] = run
        self.live.setdefault(profile_id, []).append(run)
        self.last[(journey, profile_id)] = self.now_ms
        return run

    def read_last(self, journeys: Iterable[str], people: Iterable[int]) -> None:
        """Read when these people last entered these journeys, with one query."""
        names, wanted = list(journeys), set(people)
        self.last.update(q.last_entries(self.conn, names, wanted))
        self.last_read.update((name, pid) for name in names for pid in wanted)

    def last_entry(self, journey: str, profile_id: int) -> int | None:
        """When the person last entered the journey (None: never); read alone if the batch has not read it."""
        key = (journey, profile_id)
        if key not in self.last and key not in self.last_read:
            self.read_last([journey], [profile_id])
        return self.last.get(key)

    def update(self, run: dict[str, Any], **values: Any) -> None:
        """Change a run's columns (in memory now, in the database at the next flush)."""
        values["updated_at"] = self.now_ms
        run.update(values)
        if run["id"] not in self.new_runs:  # later changes of the same run win, as statement by statement
            self.updates.setdefault(run["id"], {}).update(values)
        if values.get("status") == "done":
            runs = self.live.get(run["profile_id"], [])
            runs[:] = [other for other in runs if other is not run]

    def add_timer(self, run: dict[str, Any], due_ms: int, resume: str | None, kind: str) -> None:
        """Schedule a wake-up of the run."""
        timer = q.timer_row(run["id"], run["profile_id"], due_ms, resume, kind)
        self.timers.append(timer)
        self._timers_of.setdefault(run["id"], []).append(timer)

    def cancel_timers(self, run: dict[str, Any]) -> None:
        """Retire the run's pending timers, those of this batch and those stored before it."""
        for timer in self._timers_of.pop(run["id"], ()):
            timer["fired_at"] = self.now_ms  # written already retired, as insert-then-cancel would leave it
        if run["id"] not in self.new_runs:
            self.cancelled.add(run["id"])

    def log(self, run: dict[str, Any], node: str | None, action: str, detail: dict[str, Any]) -> None:
        """A line of the run log."""
        self.logs.append(
            {
                "run_id": run["id"],
                "journey": run["journey"],
                "profile_id": run["profile_id"],
                "node": node,
                "action": action,
                "detail": detail,
                "at": self.now_ms,
            }
        )

    def queue_send(self, run: dict[str, Any], action: e.SendEmail) -> None:
        """An email to render and enqueue with the others of its node (before the batch commits)."""
        group = (run["journey"], action.node, action.template, action.subject_variant)
        self.sends.setdefault(group, []).append((run, action))
        self.sent_to.add(run["profile_id"])

    def set_traits(self, profile_id: int, traits: dict[str, Any]) -> None:
        """Merge traits into the person's profile now (their queued emails render first, with the old ones)."""
        if any(run["profile_id"] == profile_id for items in self.sends.values() for run, _ in items):
            self.flush_sends()
        merged = {**self.traits(profile_id), **traits}
        profile_q.set_traits(self.conn, profile_id, merged, self.now_ms)
        self._all_traits()[profile_id] = merged
        self.changed_traits.add(profile_id)

    # --- writing -----------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything pending: runs, their updates, retired and new timers, the log, then the emails."""
        self.flush_rows()
        self.flush_sends()

    def flush_rows(self) -> None:
        """Write the pending journey rows, one statement per table."""
        if self.new_runs:  # first: the rows below may be of these runs
            q.insert_runs(self.conn, list(self.new_runs.values()))
            self.new_runs = {}
        if self.updates:
            q.update_runs(self.conn, self.updates)
            self.updates = {}
        if self.cancelled:  # before the new timers: a run cancelled and then parked again keeps its new one
            q.cancel_timers_of(self.conn, sorted(self.cancelled), self.now_ms)
            self.cancelled = set()
        if self.timers:
            q.add_timers(self.conn, self.timers)
            self.timers, self._timers_of = [], {}
        if self.logs:
            q.log(self.conn, self.logs)
            self.logs = []

    def flush_sends(self) -> None:
        """Render and enqueue the decided emails, one batch per journey node."""
        if not self.sends:
            return
        self.flush_rows()  # effects may read what the runs wrote so far
        sends, self.sends = self.sends, {}
        for group, items in sends.items():
            self.send(self.conn, self.now_ms, group, items)

    # --- facts -------------------------------------------------------------------------

    def facts(self, profile_id: int) -> e.Facts:
        """What a step may ask about one person, answered from the batch."""
        return PersonFacts(self, profile_id)

    def _all_traits(self) -> dict[int, dict[str, Any]]:
        if self._traits is None:
            self._traits = profile_q.traits_of(self.conn, sorted(self.people))
        return self._traits

    def traits(self, profile_id: int) -> dict[str, Any]:
        """The person's current traits."""
        found = self._all_traits().get(profile_id)
        if found is None:  # not one of the batch's people (or no profile)
            found = self._all_traits()[profile_id] = profile_q.traits_of(self.conn, [profile_id]).get(profile_id, {})
        return found

    def listed(self, address: str) -> bool:
        """Whether an address is on the suppression list."""
        if self._checked is None:
            self._checked = {a for a in (_address(t) for t in self._all_traits().values()) if a}
            self._listed = set(deliver_q.suppressed_among(self.conn, self._checked))
        if address not in self._checked:  # a trait changed in the batch, or someone outside it
            self._checked.add(address)
            self._listed.update(deliver_q.suppressed_among(self.conn, [address]))
        return address in self._listed

    def marketing_sent(self, profile_id: int, since_ms: int) -> int:
        """Marketing emails queued or sent to the person since then (the batch's own included)."""
        if self.dry or profile_id in self.sent_to or profile_id not in self.people:
            self.flush()  # exact: the batch's emails are in the outbox (a dry run's in the log)
            queued = deliver_q.marketing_counts(self.conn, [profile_id], since_ms).get(profile_id, 0)
            return queued + (q.sends_since(self.conn, profile_id, since_ms) if self.dry else 0)
        counts = self._sent.get(since_ms)
        if counts is None:
            counts = self._sent[since_ms] = deliver_q.marketing_counts(self.conn, sorted(self.people), since_ms)
        return counts.get(profile_id, 0)

    def holds(self, rule: r.Condition, profile_id: int) -> bool:
        """Whether a rule holds for the person now: evaluated once for all the batch's people."""
        if self.dry or profile_id in self.changed_traits or profile_id not in self.people:
            self.flush_rows()
            return profile_id in matching_profiles(self.conn, rule, now_ms=self.now_ms, profile_ids=[profile_id])
        found = self._rules.get(id(rule))
        if found is None:  # journey definitions outlive the batch, so the rule's id is stable in it
            self.flush_rows()
            found = self._rules[id(rule)] = matching_profiles(
                self.conn, rule, now_ms=self.now_ms, profile_ids=sorted(self.people)
            )
        return profile_id in found


@dataclass
class PersonFacts:
    """``engine.Facts`` for one person of a batch; ``asked`` says whether the step asked anything."""

    batch: StepBatch
    profile_id: int
    asked: bool = False

    def holds(self, rule: r.Condition) -> bool:
        """Evaluate a segment-language rule for this person now."""
        self.asked = True
        return self.batch.holds(rule, self.profile_id)

    def timezone(self) -> str:
        """The person's timezone trait, else the workspace's."""
        self.asked = True
        tz = self.batch.traits(self.profile_id).get("timezone")
        return tz if isinstance(tz, str) and tz else self.batch.timezone

    def trait(self, path: tuple[str, ...]) -> Any:
        """A trait value (None when absent)."""
        self.asked = True
        value = lookup(self.batch.traits(self.profile_id), path)
        return None if value is MISSING else value

    def marketing_sent_since(self, since_ms: int) -> int:
        """Marketing emails queued or sent to this person since then, by any journey or campaign."""
        self.asked = True
        return self.batch.marketing_sent(self.profile_id, since_ms)

    def suppressed(self) -> bool:
        """Whether the person unsubscribed (the trait) or their address is on the suppression list."""
        self.asked = True
        traits = self.batch.traits(self.profile_id)
        if traits.get("unsubscribed"):
            return True
        address = _address(traits)
        return bool(address) and self.batch.listed(address)


def _address(traits: dict[str, Any]) -> str:
    return str(traits.get("email") or "").strip().lower()


_PERSON_FREE = (e.Passed, e.Sleep, e.AwaitEvent, e.Finished)
"""Actions that say nothing about who the run is for (no keys, no arms)."""


def shared_step(step: e.Step, facts: PersonFacts) -> bool:
    """Whether a step is the same for every run at its node now: it asked nothing and decided nothing personal."""
    return not facts.asked and all(isinstance(a, _PERSON_FREE) for a in step.actions)


def node_of(journey: m.Journey | None, run: dict[str, Any]) -> m.Node | None:
    """The node a run is parked at (None: none, or its journey is gone)."""
    return journey.nodes.get(run["position"] or "") if journey is not None else None


def group_runs(runs: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Runs by person, oldest first."""
    out: dict[int, list[dict[str, Any]]] = {}
    for run in sorted(runs, key=lambda run: run["id"]):
        out.setdefault(int(run["profile_id"]), []).append(run)
    return out
