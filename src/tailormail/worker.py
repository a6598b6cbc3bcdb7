"""The worker: runs every domain's periodic task on the injected clock.

Each domain contributes tasks through ``worker_tasks``; a task is a name, how
often it wants to run and a function of (runtime, now) that does one round of
work and returns how many things it did.  ``run_once`` is what tests call with
a manual clock; ``run_forever`` is the `tailormail worker` process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tailormail.deliver.service import deliver_task
from tailormail.runtime import Runtime

log = logging.getLogger("tailormail.worker")


@dataclass(frozen=True)
class Task:
    """One periodic piece of work of a domain."""

    name: str
    every: timedelta
    run: Callable[[Runtime, datetime], int]


def worker_tasks(runtime: Runtime) -> list[Task]:
    """Every domain's periodic tasks, in the order they run in a round."""
    # Each domain adds its tasks here (segment rechecks, journeys, delivery, sync).
    from tailormail.journeys.service import TIMER_INTERVAL, campaigns_task, timers_task, webhooks_task
    from tailormail.predict.tasks import retrain_task
    from tailormail.runtime import journey_effects
    from tailormail.segments.realtime import worker_tasks as segment_tasks
    from tailormail.sync import tasks as sync_tasks

    return [
        *segment_tasks(runtime),
        Task("journeys", TIMER_INTERVAL, timers_task(lambda: journey_effects(runtime.settings))),
        Task("campaigns", TIMER_INTERVAL, campaigns_task(lambda: journey_effects(runtime.settings))),
        Task("journey_webhooks", TIMER_INTERVAL, webhooks_task),
        Task("sync_sources", timedelta(seconds=30), sync_tasks.run_due_sources),
        Task("sync_destinations", timedelta(seconds=1), sync_tasks.deliver_outbox),
        Task("deliver", timedelta(0), deliver_task),  # every round: an idle round costs one query
        retrain_task(runtime),
    ]


@dataclass
class Worker:
    """Runs tasks when they are due; remembers when each last ran."""

    runtime: Runtime
    tasks: list[Task]
    last_run: dict[str, datetime] = field(default_factory=dict)

    def run_once(self) -> dict[str, int]:
        """Run every task that is due now; return what each did."""
        now = self.runtime.clock.now()
        done: dict[str, int] = {}
        for task in self.tasks:
            last = self.last_run.get(task.name)
            if last is not None and now - last < task.every:
                continue
            try:
                done[task.name] = task.run(self.runtime, now)
            except Exception:  # one failing domain must not stop the others
                log.exception("worker task %s failed", task.name)
                done[task.name] = -1
            self.last_run[task.name] = now
        return done

    def run_forever(self, stop: threading.Event, tick: float = 0.2) -> None:
        """Run rounds until ``stop`` is set, waiting ``tick`` seconds between them."""
        while not stop.is_set():
            self.run_once()
            stop.wait(tick)


def make_worker(runtime: Runtime) -> Worker:
    """A worker with every domain's tasks."""
    return Worker(runtime, worker_tasks(runtime))
