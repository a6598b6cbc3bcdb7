"""What a benchmark ran on: cores, memory, Python and library versions."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
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
            f"speed now: {speed_reference()}",
        ]
    )


def speed_reference() -> str:
    """How fast this VM runs at the moment, in two figures that absolute targets follow.

    Every session gets a VM of the same kind but not of the same speed (4x
    apart between sessions, 10 % within one): a figure in events/s is only
    comparable beside these.  A pure-Python loop stands for our own code; a
    pair of writes per 4 KiB page (a WAL frame's header, then the page) for
    what a SQLite commit costs the writer.
    """
    start = time.perf_counter()
    total = 0
    for i in range(LOOP_ADDITIONS):
        total += i
    loop = time.perf_counter() - start
    page, header = b"\0" * 4096, b"\0" * 24
    with tempfile.TemporaryFile() as file:
        fd = file.fileno()
        start = time.perf_counter()
        for n in range(PAGE_WRITES):
            os.pwrite(fd, header, n * 4120)
            os.pwrite(fd, page, n * 4120 + 24)
        writes = PAGE_WRITES / (time.perf_counter() - start)
    return f"{LOOP_ADDITIONS / 1e6:.0f}M-addition Python loop {loop:.2f} s; {writes:,.0f} WAL-frame-sized write pairs/s"


LOOP_ADDITIONS = 10_000_000
PAGE_WRITES = 20_000


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
