"""A check that runs at most once per interval (file signatures the ingest path compares)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

FILES_CHECK_SECONDS = 1.0
"""How often the ingest path lists the journey and segment folders: an edited file is seen within this long.

Listing and stat-ing the folders cost about as much as the rest of a small
batch's journey work; once a second bounds that cost at any rate.
"""


@dataclass
class Throttle:
    """Says whether a check is due: the first time, then at most once per ``interval`` of ``clock`` (seconds)."""

    interval: float = FILES_CHECK_SECONDS
    clock: Callable[[], float] = time.monotonic
    _next: float | None = None

    def due(self) -> bool:
        """Whether to check now; if so, the next check is due one interval later."""
        now = self.clock()
        if self._next is not None and now < self._next:
            return False
        self._next = now + self.interval
        return True
