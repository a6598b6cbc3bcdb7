"""What a benchmark ran on: cores, memory, Python and library versions."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata

LIBRARIES = ("sqlalchemy", "fastapi", "uvicorn", "numpy", "scikit-learn", "python-liquid", "aiosmtplib")


def describe() -> str:
    """One line per fact, ready to paste into BENCHMARKS.md."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = []
    for lib in LIBRARIES:
        try:
            versions.append(f"{lib} {metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            continue
    import sqlite3

    return "\n".join(
        [
            f"machine: {os.cpu_count()} cores, {mem:.0f} GiB, {platform.machine()}, {platform.platform()}",
            f"python: {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
            f"libraries: {', '.join(versions)}",
        ]
    )


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """The fastest of ``repeat`` runs of ``fn``, in seconds (the least disturbed run)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, int(q) - 1))]
