"""SQLite's memory statistics switched off for the process, so threads running queries do not queue on one mutex.

By default SQLite counts every allocation it makes in process-wide totals
(``sqlite3_memory_used``), taking one global mutex for each malloc and free.
Queries that allocate per row (a JSON parse, a ``printf``, a grouping) on
two connections at once, on two threads, then spend much of their time
handing that mutex to each other: scoring a million customers read its
features with 90,000-170,000 context switches and about 40 % more CPU than
the same reads one after another, and the parallel read gained no wall
time.  With the counting off, the reads took 3.0-4.7 s instead of 6.4-7.7 s.

The switch (``sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0)``) exists only
while SQLite is shut down, and Python's ``sqlite3`` module starts it at
import.  So it is made once per process, at the first SQLite engine, and
only while SQLite has no allocation live at all: no connection, statement
or blob of anyone's exists then, and shutting SQLite down and starting it
again is safe.  Otherwise (and where the library cannot be reached: another
platform, a build that hides its symbols) nothing changes: the queries are
the same, only slower in parallel.  Nothing in tailormail reads SQLite's
memory statistics or sets a heap limit, the two things that need them.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading

_CONFIG_MEMSTATUS = 9
"""``SQLITE_CONFIG_MEMSTATUS`` of sqlite3.h."""
_OK = 0

_lock = threading.Lock()
_done = False


def disable() -> bool:
    """Switch SQLite's memory statistics off for this process if it is safe now; True once they are off."""
    global _done
    with _lock:
        if _done:
            return True
        library = _library()
        if library is None or library.sqlite3_memory_used() != 0:
            return False  # a connection (or another object) of someone's is open: leave SQLite running
        if library.sqlite3_shutdown() != _OK:
            return False
        # Called with two ints exactly as declared: the calling convention of the platforms
        # _library allows passes variadic ints like named ones.
        configured = library.sqlite3_config(_CONFIG_MEMSTATUS, 0) == _OK
        if library.sqlite3_initialize() != _OK:
            raise RuntimeError("SQLite could not be started again after configuring it")
        _done = configured
        return configured


@functools.cache  # loaded once: every engine made before the switch succeeds asks again
def _library() -> ctypes.CDLL | None:
    """The SQLite library that Python's sqlite3 module uses, where its functions can be called safely."""
    if sys.platform != "linux":  # Apple arm64, for one, passes variadic arguments differently
        return None
    import _sqlite3  # the extension module; its SQLite is the one every connection uses

    try:
        library = ctypes.CDLL(_sqlite3.__file__)
        for name in ("sqlite3_memory_used", "sqlite3_shutdown", "sqlite3_config", "sqlite3_initialize"):
            getattr(library, name)
    except (OSError, AttributeError):
        return None
    library.sqlite3_memory_used.restype = ctypes.c_int64
    library.sqlite3_memory_used.argtypes = []
    library.sqlite3_shutdown.argtypes = []
    library.sqlite3_initialize.argtypes = []
    library.sqlite3_config.argtypes = [ctypes.c_int, ctypes.c_int]
    return library
