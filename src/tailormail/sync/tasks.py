"""Sync as the worker runs it: due sources, the outbox, and alerts on unhealthy sources."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tailormail.clock import from_ms, to_ms
from tailormail.config import Settings
from tailormail.deliver.webhooks import AddressPolicy, make_client, post_signed
from tailormail.ingest.pipeline import IngestHook
from tailormail.store import sync as q
from tailormail.sync import schedule
from tailormail.sync.destinations import DestinationSender, outbox_hook
from tailormail.sync.pulls import PullOptions, run_source
from tailormail.sync.runs import Health, sync_status
from tailormail.sync.sources import SyncConfig, load_sync_config

if TYPE_CHECKING:
    from tailormail.runtime import Runtime

log = logging.getLogger("tailormail.sync")

ALERT_EVENT = "sync_failed"
ALERT_ANONYMOUS_ID = "tailormail-sync"
"""The system profile that alert events belong to (there is no person behind them)."""


def ingest_hooks(settings: Settings) -> list[IngestHook]:
    """The sync hooks of the ingest path (the outbox of outbound destinations)."""
    hook = outbox_hook(load_sync_config(settings))
    return [hook] if hook else []


def config_of(runtime: Runtime) -> SyncConfig:
    """The workspace's sync configuration, read once per runtime."""
    return runtime.kept("sync_config", lambda: load_sync_config(runtime.settings))


def run_due_sources(runtime: Runtime, now: datetime, options: PullOptions | None = None) -> int:
    """Run every source whose scheduled time has come; raise alerts; return how many ran."""
    config = config_of(runtime)
    ran = 0
    check_alerts(runtime, config, now)  # a late source alerts before it catches up
    for source in config.sources:
        with runtime.store.begin() as conn:
            q.register(conn, source.name, "source", to_ms(now))
            state = q.get_state(conn, source.name) or {}
            runs = q.runs_of(conn, source.name, 1)
        since = from_ms(runs[0]["started_at"] if runs else state["registered_at"])
        if schedule.is_due(source.schedule, runtime.settings.timezone, since, now):
            run_source(runtime, config, source, trigger="schedule", options=options)
            ran += 1
    if ran:
        check_alerts(runtime, config, runtime.clock.now())
    return ran


def deliver_outbox(runtime: Runtime, now: datetime) -> int:
    """Send due outbound deliveries (the sender keeps rate limits between rounds)."""
    config = config_of(runtime)
    if not config.destinations:
        return 0
    sender = runtime.kept("sync_sender", lambda: DestinationSender(runtime.settings, config))
    return int(sender.run(runtime, now))


def check_alerts(runtime: Runtime, config: SyncConfig, now: datetime) -> list[Health]:
    """Raise an alert for each source newly failing or late; clear those healthy again."""
    raised = []
    with runtime.store.read() as conn:
        states = q.all_states(conn)
    for health in sync_status(runtime.store, config, runtime.settings.timezone, now):
        state = states.get(health.name)
        if health.kind != "source" or state is None:
            continue
        if health.alarm and state["alerted_at"] is None:
            _raise_alert(runtime, config, health, now)
            raised.append(health)
        elif not health.alarm and health.health in ("ok", "degraded") and state["alerted_at"] is not None:
            with runtime.store.begin() as conn:
                q.set_state(conn, health.name, alerted_at=None, alert_reason=None)
    return raised


def _raise_alert(runtime: Runtime, config: SyncConfig, health: Health, now: datetime) -> None:
    """A log line, a ``sync_failed`` event through the ingestor, and the optional webhook."""
    now_ms = to_ms(now)
    log.warning("sync source %s is %s: %s", health.name, health.health, health.reason)
    with runtime.store.begin() as conn:
        q.set_state(conn, health.name, alerted_at=now_ms, alert_reason=f"{health.health}: {health.reason}")
    properties: dict[str, Any] = {
        "source": health.name,
        "health": health.health,
        "reason": health.reason,
        "failuresInARow": health.failures_in_a_row,
        "runId": health.last_run["id"] if health.last_run else None,
    }
    runtime.ingestor.ingest_raw(
        [
            {
                "type": "track",
                "event": ALERT_EVENT,
                "anonymousId": ALERT_ANONYMOUS_ID,
                "messageId": f"{ALERT_EVENT}:{health.name}:{now_ms}",
                "timestamp": now.isoformat(),
                "properties": properties,
            }
        ]
    )
    if config.alert_webhook:
        policy = AddressPolicy(allow_private=config.allow_private)
        with make_client(policy, timeout=10.0) as client:
            outcome = post_signed(
                client,
                config.alert_webhook,
                {"event": ALERT_EVENT, **properties},
                secret=runtime.settings.secret,
                unix_seconds=int(now.timestamp()),
            )
        if not outcome.ok:
            log.warning("sync alert webhook failed: %s", outcome.error)


def status(runtime: Runtime) -> list[Health]:
    """The health of every source and destination now."""
    return sync_status(runtime.store, config_of(runtime), runtime.settings.timezone, runtime.clock.now())


def history(runtime: Runtime, name: str, limit: int = 50) -> list[dict[str, Any]]:
    """The latest runs of one source or destination, newest first (NotFound if unknown)."""
    config = config_of(runtime)
    if name not in config.names():
        from tailormail.errors import NotFound

        raise NotFound(f"no sync source or destination named {name!r}", hint="see `tailormail sync status`")
    with runtime.store.read() as conn:
        return q.runs_of(conn, name, limit)


def run_now(runtime: Runtime, name: str, options: PullOptions | None = None) -> dict[str, Any]:
    """Run one source (a pull) or destination (send what is due) now; return its run log."""
    config = config_of(runtime)
    history(runtime, name, 0)  # NotFound for an unknown name
    now = runtime.clock.now()
    if any(s.name == name for s in config.sources):
        run = run_source(runtime, config, config.source(name), trigger="manual", options=options)
        check_alerts(runtime, config, runtime.clock.now())
        return run
    sender = DestinationSender(runtime.settings, config, resolver=(options or PullOptions()).resolver)
    try:
        sender.run_destination(runtime, config.destination(name), now, trigger="manual")
    finally:
        sender.close()
    return history(runtime, name, 1)[0]


def dead_letters(runtime: Runtime, name: str, *, requeue: bool = False) -> list[dict[str, Any]]:
    """A destination's dead-letter list; with ``requeue`` they go back to pending first."""
    config_of(runtime).destination(name)
    with runtime.store.begin() as conn:
        if requeue:
            q.requeue_dead(conn, name, to_ms(runtime.clock.now()))
            return q.deliveries(conn, name, "pending")
        return q.deliveries(conn, name, "dead")
