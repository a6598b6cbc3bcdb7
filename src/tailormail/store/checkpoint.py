"""SQLite's write-ahead log folded into the database by a background thread, off the commit path.

By default SQLite checkpoints inside the commit that pushes the log past 1,000
pages: that writer copies the pages into the database and syncs both files
while every other writer waits on it, and on this machine that was half the
time of a stream of ingest batches.  SQLite's documentation names the remedy:
turn the automatic checkpoint down and run checkpoints from a thread of their
own.  Here writers keep a far larger automatic checkpoint as a backstop (should
this thread stall, the log still cannot grow without bound); after a write
commits, the thread is woken, waits a moment so that commits close together
share one checkpoint, and runs a PASSIVE checkpoint on its own connection,
which never blocks readers or the writer.  The sqlite3 module releases the GIL
while SQLite works, so the copy and the syncs run on the other core.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any
from urllib.request import pathname2url

# Writers checkpoint themselves only past this many pages (256 MiB of 4 KiB pages).  Under a
# steady stream of commits the log seldom starts over (a writer restarts it only when it begins
# while every frame is already folded in, and the next batch begins at once), so it grows until
# a writer reaches this mark and checkpoints in its own commit: 30-45 ms where a commit takes
# 8.  With 64 MiB that was every eighth batch of real-time ingest; at 256 MiB a quarter as
# often, and sustained real-time ingest was 10 % faster (BENCHMARKS.md, segments, session 8).
# PostgreSQL's own default lets 1 GB of log build up between checkpoints.
BACKSTOP_PAGES = 65_536
# After a checkpoint the log file is cut back to this size (bytes): above the backstop's 4,120-byte
# frames and a batch more, so a busy log reuses its file rather than growing it again each round
# (a commit that extends the file took 4x one that overwrites it).
LOG_SIZE_LIMIT = 320 * 2**20
# Commits within this many seconds of the first share one checkpoint.
COALESCE_SECONDS = 0.05


def configure_writer(dbapi_conn: Any) -> None:
    """PRAGMAs for a connection whose log the background thread checkpoints."""
    dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    dbapi_conn.execute(f"PRAGMA journal_size_limit={LOG_SIZE_LIMIT}")


class Checkpointer:
    """A daemon thread that runs PASSIVE checkpoints of one database file when nudged."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.checkpoints = 0
        self.ran = threading.Event()
        """Set after each checkpoint of the thread (for whoever must know the log was folded in)."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def nudge(self) -> None:
        """A write committed: checkpoint soon (starts the thread on first use in this process)."""
        if self._thread is None or self._pid != os.getpid():
            self._start()
        self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()  # a forked child has the object but not the thread
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tailormail-wal-checkpoint", daemon=True)
            self._thread.start()

    def checkpoint(self) -> tuple[int, int, int] | None:
        """Run one PASSIVE checkpoint now, on a connection of its own: (busy, log pages, checkpointed)."""
        try:
            conn = self._connect()
        except sqlite3.OperationalError:
            return None  # the file is gone
        try:
            return self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int, int] | None:
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError:
            return None  # another process is checkpointing, or the file is gone: the next nudge retries
        self.checkpoints += 1
        return (int(row[0]), int(row[1]), int(row[2])) if row else None

    def _connect(self) -> sqlite3.Connection:
        # Read-write but never create: a workspace removed meanwhile must not come back as an empty file.
        uri = f"file:{pathname2url(os.path.abspath(self.path))}?mode=rw"
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)

    def _run(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.OperationalError:
            return  # the file is gone: nothing to fold in
        try:
            while not self._stop.is_set():
                self._wake.wait()
                if self._stop.wait(COALESCE_SECONDS):
                    break
                self._wake.clear()
                self._checkpoint(conn)
                self.ran.set()
        finally:
            conn.close()

    def stop(self) -> None:
        """End the thread (its connection closes; the last connection to close folds the log in)."""
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join()
        self._thread = None
