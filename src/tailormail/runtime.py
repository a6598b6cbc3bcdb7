"""Wiring: one place that builds the store, clock and services of a workspace.

Adapters (API, CLI, worker) call ``open_runtime`` and then the library; later
domains add their ingest hooks and services here, so wiring is never spread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tailormail.clock import Clock, SystemClock
from tailormail.config import Settings, load_settings
from tailormail.ingest.pipeline import IngestHook, Ingestor
from tailormail.store import Store

T = TypeVar("T")


@dataclass
class Runtime:
    """The opened workspace: settings, store, clock and the ingest path."""

    settings: Settings
    store: Store
    clock: Clock
    ingestor: Ingestor
    extras: dict[str, Any] = field(default_factory=dict)
    _extras_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def kept(self, name: str, make: Callable[[], T]) -> T:
        """The object kept under ``name`` for this runtime (a sender, a cache), made by ``make`` on first use."""
        found = self.extras.get(name)
        if found is None:
            with self._extras_lock:  # two first uses at once must not make two (each may hold connections)
                found = self.extras.get(name)
                if found is None:
                    found = self.extras[name] = make()
        return found  # type: ignore[no-any-return]

    def close(self) -> None:
        """Release database connections."""
        self.store.close()


def ingest_hooks(settings: Settings, store: Store, clock: Clock) -> list[IngestHook]:
    """The hooks every ingested batch runs through (real-time segments, journeys)."""
    from tailormail.content.recommend.catalog import catalog_hook
    from tailormail.journeys.service import make_hook as journey_hook
    from tailormail.segments.realtime import make_hook as segments_hook
    from tailormail.sync.tasks import ingest_hooks as sync_hooks  # local: sync imports the ingest path

    return [
        catalog_hook,  # products described by events join the catalog
        journey_hook(settings, lambda: journey_effects(settings)),  # triggers, goals, awaited events
        segments_hook(settings),  # real-time segment memberships (and segment_* events)
        *sync_hooks(settings),  # outbound sync destinations: the outbox, in the same transaction
    ]


def journeys_on_segment_changes(conn: Any, settings: Settings, diffs: Any, now_ms: int) -> None:
    """Start segment-entry journeys for people who entered or left a segment (a membership listener)."""
    from tailormail.journeys.service import runner_for

    runner = runner_for(settings, lambda: journey_effects(settings))
    if runner.journeys:
        runner.on_segment_changes(conn, diffs, now_ms)


def journey_effects(settings: Settings) -> Any:
    """Journey sends rendered with tracked links (track) and put in the outbox (deliver)."""
    from tailormail.content.recommend.model import RecommendSettings, recommendation_source
    from tailormail.deliver.settings import deliver_settings
    from tailormail.journeys.effects import OutboxEffects
    from tailormail.track.links import Tracker
    from tailormail.track.settings import track_settings

    track, deliver = track_settings(settings), deliver_settings(settings)
    domain = deliver.domain or "example.com"
    tracker = Tracker(track.base_url, settings.secret, track.utm)
    recommend = RecommendSettings.of(settings)  # [recommend] as previews and `recommend` read it

    return OutboxEffects(
        settings=settings,
        signer_for=tracker.signer,
        links_for=tracker.links_for,
        from_address=deliver.sender or f"hello@{domain}",
        domain=domain,
        recommend=lambda now_ms: recommendation_source(now_ms, names=settings.events, settings=recommend),
    )


def open_runtime(
    workspace: str | Path | None = None,
    *,
    clock: Clock | None = None,
    database_url: str | None = None,
    migrate: bool = True,
) -> Runtime:
    """Open a workspace: read settings, connect, migrate, wire the services."""
    settings = load_settings(workspace)
    if database_url:
        settings = _with_url(settings, database_url)
    store = Store(settings.database_url)
    if migrate:
        store.migrate()
    clock = clock or SystemClock()
    ingestor = Ingestor(store, clock, ingest_hooks(settings, store, clock))
    from tailormail.segments.membership import listen  # local, like the hooks: segments import the store

    listen(journeys_on_segment_changes)  # once per process: segment entries start journeys
    return Runtime(settings=settings, store=store, clock=clock, ingestor=ingestor)


def _with_url(settings: Settings, url: str) -> Settings:
    from dataclasses import replace

    return replace(settings, database_url=url)
