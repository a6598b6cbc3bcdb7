"""What a benchmark ran on: cores, memory, Python and library versions."""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

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
    writes = frame_write_pairs_per_second()
    return f"{LOOP_ADDITIONS / 1e6:.0f}M-addition Python loop {loop:.2f} s; {writes:,.0f} WAL-frame-sized write pairs/s"


def frame_write_pairs_per_second() -> float:
    """Pairs of writes (a WAL frame's 24-byte header, then its 4 KiB page) this VM makes a second, into a new file.

    SQLite's commit writes each page the transaction dirtied to the log this
    way, on the committing thread.
    """
    page, header = b"\0" * 4096, b"\0" * 24
    with tempfile.TemporaryFile() as file:
        fd = file.fileno()
        start = time.perf_counter()
        for n in range(PAGE_WRITES):
            os.pwrite(fd, header, n * 4120)
            os.pwrite(fd, page, n * 4120 + 24)
        return PAGE_WRITES / (time.perf_counter() - start)


def log_write_share(
    pages_per_batch: int, batch_events: int, events_per_second: float, pairs_per_second: float
) -> float:
    """The share of one thread's second that the log writes of ``events_per_second`` take, at that page rate."""
    return pages_per_batch * events_per_second / batch_events / pairs_per_second


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


def thread_read_calls() -> int | None:
    """Read system calls the calling thread has made so far (Linux's ``/proc/thread-self/io``; None elsewhere).

    SQLite reads each page its own cache misses with one ``pread``: a
    thread's count of read calls across a stream of batches is the pages it
    fetched from the operating system, the checkpointer's reads (another
    thread) left out.  Like a page count, it does not move with the VM's speed.
    """
    try:
        text = Path("/proc/thread-self/io").read_text()
    except OSError:
        return None
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return int(fields["syscr"]) if "syscr" in fields else None


def os_cached_share(path: str) -> float | None:
    """The share of a file's pages the operating system holds in memory now (Linux; None elsewhere).

    A run on a large database reads from memory or from disk depending on
    this, and this VM's page cache does not always keep a file it has just
    read: seen here, 5 GB of an 8 GB database cached with 18 GB of memory free.
    Asked with ``mincore`` on a read-only mapping, which reads nothing.
    """
    if not sys.platform.startswith("linux"):
        return None
    size = os.path.getsize(path)
    if size == 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    page = os.sysconf("SC_PAGE_SIZE")
    pages = (size + page - 1) // page
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            vector = ctypes.create_string_buffer(pages)
            if libc.mincore(address, size, vector) != 0:
                return None
            return sum(byte & 1 for byte in vector.raw) / pages
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)
