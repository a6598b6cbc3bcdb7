"""`journeys test`: the path one person would take, on a virtual clock, changing nothing.

Everything happens inside one transaction that is rolled back at the end:
the person's real data, the events of the test file, the real segment hooks
and the real runner, with time jumping from one event or timer to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from tailormail.clock import to_ms
from tailormail.errors import NotFound
from tailormail.ingest.messages import Message, parse_message
from tailormail.journeys import engine as e
from tailormail.journeys import model as m
from tailormail.journeys.definitions import get_journey, load_journeys, send_policy
from tailormail.journeys.runner import JourneyRunner
from tailormail.runtime import Runtime
from tailormail.store import journeys as q
from tailormail.store import profiles as profile_q


@dataclass(frozen=True)
class PlannedEmail:
    """An email the dry run would send."""

    at_ms: int
    node: str
    template: str
    subject_variant: int | None


@dataclass
class DryRun:
    """The path a person took through a journey in a dry run."""

    journey: str
    user_id: str
    timeline: list[dict[str, Any]] = field(default_factory=list)
    emails: list[PlannedEmail] = field(default_factory=list)


@dataclass
class _Capture:
    """Effects of a dry run: remember what would be sent, send nothing."""

    emails: list[PlannedEmail] = field(default_factory=list)

    def send(self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.SendEmail, now_ms: int) -> None:
        self.emails.append(PlannedEmail(now_ms, action.node, action.template, action.subject_variant))

    def webhook(
        self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.CallWebhook, now_ms: int
    ) -> None:
        return None


class _Rollback(Exception):
    """Raised to undo the dry run's transaction."""


def dry_run(
    runtime: Runtime,
    name: str,
    user_id: str,
    raw_events: Sequence[dict[str, Any]] = (),
    horizon: timedelta = timedelta(days=60),
) -> DryRun:
    """Run ``name`` for one person on a virtual clock; nothing is kept."""
    journey = get_journey(load_journeys(runtime.settings), name)
    capture = _Capture()
    runner = JourneyRunner(
        {name: journey},
        capture,
        policy=send_policy(runtime.settings),
        timezone=runtime.settings.timezone,
        ignore_reentry=True,
        dry=True,
    )
    start = to_ms(runtime.clock.now())
    events = sorted(_messages(raw_events, user_id, start), key=lambda msg: msg.timestamp)
    result = DryRun(name, user_id)
    try:
        with runtime.store.begin() as conn:
            profile = profile_q.get_profile(conn, user_id=user_id)
            if profile is None:
                raise NotFound(f"no profile with userId {user_id!r}", hint="import or identify the person first")
            clock = events[0].timestamp if events else start
            runs = _simulate(runtime, conn, runner, journey, profile["id"], events, clock, clock + _ms(horizon))
            result.timeline = q.log_of(conn, runs)
            result.emails = capture.emails
            raise _Rollback
    except _Rollback:
        pass
    return result


def _simulate(
    runtime: Runtime,
    conn: Connection,
    runner: JourneyRunner,
    journey: m.Journey,
    profile_id: int,
    events: list[Message],
    now: int,
    end: int,
) -> list[int]:
    before = {r["id"] for r in q.runs_of(conn, journey.name, profile_id)}
    # The journey from its entry, whatever the person's real runs are doing: in this transaction
    # (rolled back) their live runs are set aside, so the events below neither resume nor end them.
    live = q.active_runs(conn, [journey.name], profile_id)
    q.update_runs(conn, {r["id"]: {"status": "done", "waiting_for": None} for r in live})
    if not isinstance(journey.entry, m.EventEntry | m.SegmentEntry) or not events:
        runner.enter(conn, journey, profile_id, {}, now)
    queue = list(events)
    while True:
        runs = [r["id"] for r in q.runs_of(conn, journey.name, profile_id) if r["id"] not in before]
        timer = q.next_timer_due(conn, runs) if runs else None
        upcoming = [t for t in (timer, queue[0].timestamp if queue else None) if t is not None]
        if not upcoming or min(upcoming) > end:
            return runs
        now = max(now, min(upcoming))
        if queue and queue[0].timestamp <= now:
            stored = runtime.ingestor.ingest_in(conn, [queue.pop(0)], now)
            runner.on_events(conn, stored.events, now)
        else:
            runner.fire_due_timers(conn, now, only_runs=runs)


def _messages(raws: Sequence[dict[str, Any]], user_id: str, start: int) -> list[Message]:
    out = []
    for i, raw in enumerate(raws):
        filled = {"type": "track", "userId": user_id, "messageId": f"dry-run-{i}", **raw}
        out.append(parse_message(filled, index=i, received_ms=start))
    return out


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)
