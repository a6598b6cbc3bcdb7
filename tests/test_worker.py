"""The worker runs each task when due, on the injected clock, and survives failures."""

from __future__ import annotations

from datetime import datetime, timedelta

from tailormail.clock import ManualClock
from tailormail.runtime import Runtime
from tailormail.worker import Task, Worker


def test_tasks_run_when_due_and_a_failure_does_not_stop_the_others(runtime: Runtime, clock: ManualClock) -> None:
    calls: list[tuple[str, datetime]] = []

    def ok(rt: Runtime, now: datetime) -> int:
        calls.append(("ok", now))
        return 1

    def broken(rt: Runtime, now: datetime) -> int:
        raise RuntimeError("boom")

    worker = Worker(runtime, [Task("broken", timedelta(seconds=1), broken), Task("ok", timedelta(minutes=1), ok)])
    assert worker.run_once() == {"broken": -1, "ok": 1}
    clock.advance(timedelta(seconds=30))
    assert worker.run_once() == {"broken": -1}
    clock.advance(timedelta(seconds=30))
    assert worker.run_once() == {"broken": -1, "ok": 1}
    assert [c[1] - calls[0][1] for c in calls] == [timedelta(0), timedelta(minutes=1)]
