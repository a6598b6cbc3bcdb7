"""Wall-clock and CPU seconds per phase of training or scoring, for logs and the benchmark."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimes:
    """Accumulated seconds per named phase (features, fit, evaluate, store, write)."""

    def __init__(self) -> None:
        self.wall: defaultdict[str, float] = defaultdict(float)
        self.cpu: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the time spent inside the ``with`` block to ``name``."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] += time.perf_counter() - wall
            self.cpu[name] += time.process_time() - cpu

    def summary(self) -> str:
        """'features 1.2 s (CPU 1.0 s), fit ...' in the order the phases first ran."""
        return ", ".join(f"{name} {self.wall[name]:.1f} s (CPU {self.cpu[name]:.1f} s)" for name in self.wall)
