"""The workspace's journey runner, shared by the ingest hook and the worker's timer task."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from tailormail.clock import to_ms
from tailormail.ingest.pipeline import IngestHook, StoredEvent
from tailormail.journeys import campaigns
from tailormail.journeys.definitions import load_journeys, send_policy
from tailormail.journeys.effects import OutboxEffects
from tailormail.journeys.runner import TIMER_BATCH, JourneyRunner
from tailormail.journeys.scheduled import enter_scheduled
from tailormail.journeys.webhooks import WebhookPoster, webhook_settings
from tailormail.store import Store
from tailormail.throttle import Throttle

_RUNNERS: dict[str, tuple[tuple[Any, ...], JourneyRunner]] = {}
_CHECKS: dict[str, Throttle] = {}


def runner_for(
    settings: Any, effects_factory: Callable[[], OutboxEffects], *, clock: Callable[[], float] | None = None
) -> JourneyRunner:
    """One runner per workspace per process, built again when a journey or segment file changes.

    Files change under a running worker (the API's PUT, an editor, a deploy):
    their names, sizes and modification times are compared at most once per
    ``FILES_CHECK_SECONDS`` (of ``clock``, default the monotonic clock), so a
    change is seen within that long.  The listing cost as much as the rest of a
    100-event batch's journey work, and the hook and the segment-change listener
    each asked once per batch.  The API's own writes drop the runner at once
    (``forget_runners``).
    """
    key = str(settings.workspace)
    cached = _RUNNERS.get(key)
    check = _CHECKS.get(key)
    if check is None or (clock is not None and check.clock is not clock):
        check = _CHECKS[key] = Throttle(clock=clock or time.monotonic)
    if cached is not None and not check.due():
        return cached[1]
    signature = _files_signature(Path(settings.workspace))
    if cached is None or cached[0] != signature:
        runner = JourneyRunner(
            load_journeys(settings), effects_factory(), policy=send_policy(settings), timezone=settings.timezone
        )
        _RUNNERS[key] = (signature, runner)
        return runner
    return cached[1]


def install_runner(settings: Any, runner: JourneyRunner) -> None:
    """Use this runner for the workspace until its journey or segment files change (benchmarks, tools)."""
    _RUNNERS[str(settings.workspace)] = (_files_signature(Path(settings.workspace)), runner)


def _files_signature(workspace: Path) -> tuple[Any, ...]:
    found = []
    for folder in ("journeys", "segments"):
        try:
            entries = list(os.scandir(workspace / folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            info = entry.stat()
            found.append((folder, entry.name, info.st_size, info.st_mtime_ns))
    return tuple(sorted(found))


def forget_runners() -> None:
    """Drop cached runners (after journey files change, and between tests)."""
    _RUNNERS.clear()
    _CHECKS.clear()
    _EFFECTS.clear()


def make_hook(settings: Any, effects_factory: Any) -> IngestHook:
    """The ingest hook: events start, resume and end runs in the ingest transaction."""

    def hook(conn: Connection, stored: list[StoredEvent], now_ms: int) -> None:
        runner = runner_for(settings, effects_factory)
        if runner.journeys:
            runner.on_events(conn, stored, now_ms)

    return hook


def timers_task(effects_factory: Any) -> Any:
    """The worker task: fire due timers and start date, inactivity and broadcast entries."""

    def run(runtime: Any, now: datetime) -> int:
        runner = runner_for(runtime.settings, effects_factory)
        if not runner.journeys:
            return 0
        now_ms = to_ms(now)
        fired = fire_timers_while_due(runtime.store, runner, now_ms, budget_s=TIMER_ROUND_SECONDS)
        with runtime.store.begin() as conn:
            fired += enter_scheduled(conn, runner, now_ms)
        return fired

    return run


TIMER_ROUND_SECONDS = 0.4
"""How long one worker round goes on waking due timers (then the worker's other tasks get their turn)."""


def fire_timers_while_due(
    store: Store, runner: JourneyRunner, now_ms: int, *, budget_s: float, clock: Callable[[], float] = time.monotonic
) -> int:
    """Wake due timers a batch at a time, each batch its own transaction, until none is due or ``budget_s`` is spent.

    One batch a round capped wake-ups at 1,000 a second however many were due
    (a broadcast's day-long wait ending for a million people at once); between
    batches the write lock is free, so ingest goes on.
    """
    deadline = clock() + budget_s
    fired = 0
    while True:
        with store.begin() as conn:
            woken = runner.fire_due_timers(conn, now_ms, TIMER_BATCH)
        fired += woken
        if woken < TIMER_BATCH or clock() >= deadline:
            return fired


TIMER_INTERVAL = timedelta(seconds=0.5)
"""Timers fire within a second of being due."""


CAMPAIGN_BATCHES_PER_ROUND = 2
"""Batches of campaign members one worker round decides, so delivery of the first ones starts meanwhile."""


def campaigns_task(effects_factory: Any) -> Any:
    """The worker task: take the segments of due campaigns, decide a few batches of members, close finished ones."""

    def run(runtime: Any, now: datetime) -> int:
        settings = runtime.settings
        now_ms = to_ms(now)
        with runtime.store.begin() as conn:
            done = campaigns.resolve_due(conn, settings, now_ms)
        effects = _campaign_effects(settings, effects_factory)
        policy = send_policy(settings)
        for _ in range(CAMPAIGN_BATCHES_PER_ROUND):
            with runtime.store.begin() as conn:
                decided = campaigns.send_due(conn, effects, policy, now_ms, timezone=settings.timezone).decided
            done += decided
            if not decided:
                break
        with runtime.store.begin() as conn:
            campaigns.finish_done(conn, now_ms)
        return done

    return run


_EFFECTS: dict[str, OutboxEffects] = {}


def _campaign_effects(settings: Any, effects_factory: Callable[[], OutboxEffects]) -> OutboxEffects:
    key = str(settings.workspace)
    if key not in _EFFECTS:
        _EFFECTS[key] = effects_factory()
    return _EFFECTS[key]


def webhooks_task(runtime: Any, now: datetime) -> int:
    """The worker task: post the journeys' due webhook steps (kept per runtime with its HTTP client)."""
    poster = runtime.kept(
        "journey_webhooks",
        lambda: WebhookPoster(
            webhook_settings(runtime.settings), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        ),
    )
    return int(poster.run(runtime.store, to_ms(now)))
