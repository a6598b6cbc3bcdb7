"""The worker's predict task: retrain on a schedule (weekly by default), then rescore."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tailormail.errors import NotFound, ValidationError
from tailormail.predict import service

if TYPE_CHECKING:
    from tailormail.runtime import Runtime
    from tailormail.worker import Task

log = logging.getLogger("tailormail.predict")


def retrain(runtime: Runtime, now: datetime) -> int:
    """Train every model; score with whatever is promoted; return how many versions were promoted."""
    promoted = 0
    config = service.PredictSettings.from_settings(runtime.settings)
    trainer = service.Trainer(runtime.store, runtime.settings.events, config)  # reads the events once for all three
    for spec in config.specs():
        try:
            result = trainer.train(spec, now)
        except ValidationError as error:  # too little history yet: try again next round
            log.info("predict: %s not retrained: %s", spec.name, error)
            continue
        if result.status == "promoted":
            promoted += 1
        else:
            log.warning("predict: %s v%s not promoted: %s", result.model, result.version, result.reason)
    with contextlib.suppress(NotFound):  # nothing trained yet
        service.score(runtime.store, runtime.settings, now)
    return promoted


def retrain_task(runtime: Runtime) -> Task:
    """The scheduled retraining task ([predict] retrain_every_days, default 7)."""
    from tailormail.worker import Task

    every = service.PredictSettings.from_settings(runtime.settings).retrain_every_days
    return Task("predict.retrain", timedelta(days=every), retrain)
