"""Cron schedules in the workspace timezone, health, lateness and alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crm_peer import Peer, append_config, serve
from tailormail.clock import ManualClock
from tailormail.deliver.webhooks import SIGNATURE_HEADER
from tailormail.runtime import Runtime, open_runtime
from tailormail.store import events as event_q
from tailormail.sync import schedule, tasks
from tailormail.sync.pulls import PullOptions


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NEXT_CASES = [
    ("default 03:00 UTC", "0 3 * * *", "UTC", "2026-03-02T12:00", "2026-03-03T03:00"),
    ("03:00 Berlin in winter is 02:00 UTC", "0 3 * * *", "Europe/Berlin", "2026-03-02T12:00", "2026-03-03T02:00"),
    (
        "03:00 Berlin on the DST switch night is 01:00 UTC",
        "0 3 * * *",
        "Europe/Berlin",
        "2026-03-29T00:30",
        "2026-03-29T01:00",
    ),
    ("03:00 New York (EST)", "0 3 * * *", "America/New_York", "2026-03-02T12:00", "2026-03-03T08:00"),
    ("every 15 minutes", "*/15 * * * *", "UTC", "2026-03-02T12:07", "2026-03-02T12:15"),
    ("strictly after", "0 3 * * *", "UTC", "2026-03-03T03:00", "2026-03-04T03:00"),
]


@pytest.mark.parametrize(("case", "expr", "tz", "after", "expected"), NEXT_CASES, ids=[c[0] for c in NEXT_CASES])
def test_next_run(case: str, expr: str, tz: str, after: str, expected: str) -> None:
    assert schedule.next_run(expr, at(after), tz) == at(expected)


LATE_CASES = [
    # (case, since, now, due?, missed?, alarm?)
    ("before the time", "2026-03-02T12:00", "2026-03-03T02:59", False, False, False),
    ("just due", "2026-03-02T12:00", "2026-03-03T03:01", True, False, False),
    ("past the grace", "2026-03-02T12:00", "2026-03-03T03:06", True, True, False),
    ("more than one interval late", "2026-03-02T12:00", "2026-03-04T03:01", True, True, True),
]


@pytest.mark.parametrize(("case", "since", "now", "due", "missed", "alarm"), LATE_CASES, ids=[c[0] for c in LATE_CASES])
def test_due_late_and_alarm(case: str, since: str, now: str, due: bool, missed: bool, alarm: bool) -> None:
    expr = "0 3 * * *"
    assert schedule.is_due(expr, "UTC", at(since), at(now)) is due
    assert (schedule.missed_since(expr, "UTC", at(since), at(now)) is not None) is missed
    assert schedule.late_beyond_interval(expr, "UTC", at(since), at(now)) is alarm


def test_interval() -> None:
    assert schedule.interval("0 3 * * *", at("2026-03-02T12:00"), "UTC") == timedelta(days=1)
    assert schedule.interval("0 * * * *", at("2026-03-02T12:00"), "UTC") == timedelta(hours=1)


def add_source(workspace: Path, url: str, alert_webhook: str = "") -> None:
    append_config(
        workspace,
        f"""
[sync]
allow_private = true
alert_webhook = "{alert_webhook}"

[[sync.sources]]
name = "crm"
url = "{url}"
retries = 0
mapping = {{ key = "id", user_id = "id" }}
""",
    )


def alert_events(rt: Runtime) -> list[dict[str, Any]]:
    with rt.store.read() as conn:
        return [e for e in event_q.iter_events(conn) if e["event"] == "sync_failed"]


def test_three_failures_in_a_row_raise_one_alert_and_recovery_clears_it(workspace: Path, clock: ManualClock) -> None:
    state = {"status": 500}

    def crm(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
        return state["status"], [{"id": "u1"}] if state["status"] == 200 else {"error": "boom"}, {}

    def hook(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
        return 200, {}, {}

    with serve({"/crm": crm, "/alert": hook}) as peer:
        add_source(workspace, f"{peer.base_url}/crm", alert_webhook=f"{peer.base_url}/alert")
        rt = open_runtime(workspace, clock=clock)
        try:
            healths = []
            for _ in range(4):
                tasks.run_now(rt, "crm", PullOptions(sleep=lambda _: None))
                healths.append(tasks.status(rt)[0].health)
                clock.advance(timedelta(minutes=1))
            assert healths == ["degraded", "degraded", "failing", "failing"]
            (alert,) = alert_events(rt)  # raised once, not again while still failing
            assert alert["properties"]["source"] == "crm" and alert["properties"]["failuresInARow"] == 3
            state["status"] = 200
            tasks.run_now(rt, "crm")
            assert tasks.status(rt)[0].health == "ok"
            for _ in range(3):
                state["status"] = 500
                tasks.run_now(rt, "crm", PullOptions(sleep=lambda _: None))
            assert len(alert_events(rt)) == 2  # a new streak alerts again
        finally:
            rt.close()
    posted = [(json.loads(body), headers) for path, _, headers, body in peer.requests if path == "/alert"]
    assert len(posted) == 2 and posted[0][0]["event"] == "sync_failed" and SIGNATURE_HEADER in posted[0][1]


def test_the_worker_runs_sources_on_schedule_and_a_late_one_alerts(workspace: Path, clock: ManualClock) -> None:
    def crm(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
        return 200, [{"id": "u1"}], {}

    with serve({"/crm": crm}) as peer:
        add_source(workspace, f"{peer.base_url}/crm")
        rt = open_runtime(workspace, clock=clock)
        try:
            assert tasks.run_due_sources(rt, clock.now()) == 0  # T0 is Monday noon: next run 03:00 Tuesday
            assert tasks.status(rt)[0].health == "never run"
            clock.set(at("2026-03-03T03:00:30"))
            assert tasks.run_due_sources(rt, clock.now()) == 1
            assert tasks.run_due_sources(rt, clock.now()) == 0
            assert tasks.status(rt)[0].health == "ok"
            clock.set(at("2026-03-04T03:30"))  # the worker was down at 03:00
            assert tasks.status(rt)[0].health == "late" and not tasks.status(rt)[0].alarm
            clock.set(at("2026-03-05T03:30"))  # late by more than a day: alert, then catch up
            assert tasks.status(rt)[0].alarm
            assert tasks.run_due_sources(rt, clock.now()) == 1
            (alert,) = alert_events(rt)
            assert alert["properties"]["health"] == "late"
            assert tasks.status(rt)[0].health == "ok"
        finally:
            rt.close()
    assert len(peer.seen("/crm")) == 2


def test_old_run_logs_are_pruned(runtime: Runtime, clock: ManualClock) -> None:
    from tailormail.sync.runs import RunLog

    ids = [RunLog(runtime.store, clock, "crm", "source", "manual", keep=3).finish()["id"] for _ in range(5)]
    RunLog(runtime.store, clock, "other", "source", "manual", keep=3).finish()
    with runtime.store.read() as conn:
        from tailormail.store import sync as sync_q

        assert [r["id"] for r in sync_q.runs_of(conn, "crm")] == ids[:1:-1]
        assert len(sync_q.runs_of(conn, "other")) == 1
