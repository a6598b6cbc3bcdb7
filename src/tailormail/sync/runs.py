"""Sync logs and health: every run recorded, and the state of each source at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tailormail.clock import Clock, from_ms, to_ms
from tailormail.store import Store
from tailormail.store import sync as q
from tailormail.sync import schedule
from tailormail.sync.sources import SyncConfig

MAX_ERRORS = 20
"""Errors kept per run with their record; the rest are only counted (a bad feed must not bloat the log)."""

RUNS_KEPT = 500
"""Run logs kept per source or destination; older ones are deleted (they hold offending records, i.e. personal data)."""

HEALTH = ("ok", "degraded", "failing", "late", "never run")


class RunLog:
    """Counts and errors of one run as it happens; written when it starts and when it ends."""

    def __init__(self, store: Store, clock: Clock, name: str, kind: str, trigger: str, keep: int = RUNS_KEPT) -> None:
        self.store, self.clock, self.keep = store, clock, keep
        self.name, self.kind = name, kind
        self.counts = {"read": 0, "written": 0, "skipped": 0, "failed": 0, "retries": 0}
        self.errors: list[dict[str, Any]] = []
        with store.begin() as conn:
            self.run_id = q.start_run(conn, name, kind, trigger, to_ms(clock.now()))

    def add(self, **counts: int) -> None:
        """Add to the read/written/skipped/failed counters."""
        for key, value in counts.items():
            self.counts[key] += value

    def retry(self, message: str) -> None:
        """Note one retry (always kept: the log must show them)."""
        self.counts["retries"] += 1
        self.errors.append({"kind": "retry", "message": message, "at": to_ms(self.clock.now())})

    def record_error(self, reason: str, record: Any = None, where: str | None = None) -> None:
        """Count a failed record; keep the first ones with the offending record."""
        self.counts["failed"] += 1
        if sum(1 for e in self.errors if e["kind"] == "record") < MAX_ERRORS:
            entry: dict[str, Any] = {"kind": "record", "message": reason, "record": _short(record)}
            if where:
                entry["where"] = where
            self.errors.append(entry)

    def finish(self, *, error: str | None = None, watermark: str | None = None) -> dict[str, Any]:
        """Close the run: failed if ``error``, partial if records failed, else ok."""
        status = "failed" if error else ("partial" if self.counts["failed"] else "ok")
        if error:
            self.errors.append({"kind": "fatal", "message": error})
        values = {
            **self.counts,
            "status": status,
            "errors": self.errors,
            "watermark": watermark,
            "finished_at": to_ms(self.clock.now()),
        }
        with self.store.begin() as conn:
            q.finish_run(conn, self.run_id, values)
            q.prune_runs(conn, self.name, self.keep)
            return q.get_run(conn, self.run_id)


def _short(record: Any) -> Any:
    """The offending record, cut to a readable size."""
    text = repr(record)
    return record if len(text) <= 2000 else text[:2000] + "…"


@dataclass(frozen=True)
class Health:
    """The state of one source or destination."""

    name: str
    kind: str
    health: str
    reason: str
    last_run: dict[str, Any] | None
    failures_in_a_row: int
    next_run: datetime | None
    alarm: bool = False
    """True when this deserves an alert: failing N times in a row, or late by more than one interval."""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready view for the API and ``--json``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "health": self.health,
            "reason": self.reason,
            "failuresInARow": self.failures_in_a_row,
            "alarm": self.alarm,
            "nextRun": self.next_run.isoformat() if self.next_run else None,
            "lastRun": run_json(self.last_run) if self.last_run else None,
        }


def run_json(run: dict[str, Any]) -> dict[str, Any]:
    """A run log row in the shape the API and ``--json`` print."""
    return {
        "id": run["id"],
        "name": run["name"],
        "kind": run["kind"],
        "trigger": run["trigger"],
        "status": run["status"],
        "startedAt": from_ms(run["started_at"]).isoformat(),
        "finishedAt": from_ms(run["finished_at"]).isoformat() if run["finished_at"] else None,
        "read": run["read"],
        "written": run["written"],
        "skipped": run["skipped"],
        "failed": run["failed"],
        "retries": run["retries"],
        "watermark": run["watermark"],
        "errors": run["errors"] or [],
    }


def sync_status(store: Store, config: SyncConfig, tz: str, now: datetime) -> list[Health]:
    """The health of every configured source and destination."""
    with store.read() as conn:
        states = q.all_states(conn)
        recent = {name: q.runs_of(conn, name, config.alert_after_failures) for name in config.names()}
    out = []
    for source in config.sources:
        state = states.get(source.name)
        since = _since(recent[source.name], state)
        out.append(_health(source.name, "source", recent[source.name], config, since, source.schedule, tz, now))
    for dest in config.destinations:
        out.append(_health(dest.name, "destination", recent[dest.name], config, None, None, tz, now))
    return out


def _since(runs: list[dict[str, Any]], state: dict[str, Any] | None) -> datetime | None:
    if runs:
        return from_ms(runs[0]["started_at"])
    return from_ms(state["registered_at"]) if state else None


def _health(
    name: str,
    kind: str,
    runs: list[dict[str, Any]],
    config: SyncConfig,
    since: datetime | None,
    cron: str | None,
    tz: str,
    now: datetime,
) -> Health:
    streak = 0
    for run in runs:
        if run["status"] != "failed":
            break
        streak += 1
    last = runs[0] if runs else None
    next_run = schedule.next_run(cron, since or now, tz) if cron else None
    missed = schedule.missed_since(cron, tz, since, now) if cron and since else None
    if missed is not None:
        health, reason = "late", f"the run due at {missed.isoformat()} did not happen"
    elif last is None:
        health, reason = "never run", ""
    elif streak >= config.alert_after_failures:
        health, reason = "failing", f"failed {streak} times in a row"
    elif streak or last["status"] == "partial":
        health, reason = "degraded", _last_error(last)
    else:
        health, reason = "ok", ""
    alarm = health == "failing" or (
        health == "late"
        and since is not None
        and cron is not None
        and schedule.late_beyond_interval(cron, tz, since, now)
    )
    return Health(name, kind, health, reason, last, streak, next_run, alarm)


def _last_error(run: dict[str, Any]) -> str:
    errors = [e for e in (run["errors"] or []) if e.get("kind") != "retry"]
    if run["status"] == "partial":
        return f"{run['failed']} record(s) failed" + (f": {errors[0]['message']}" if errors else "")
    return errors[-1]["message"] if errors else run["status"]
