"""Which tables and indexes one ingested batch writes: its WAL frames, named with SQLite's dbstat.

Real time on a large shop is bound by pages: each event lands on a random
page of several per-person indexes, and every page a transaction changes is
written whole to the log at commit and copied into the database later.  The
count of pages one batch dirties does not depend on the VM's speed, which
moves 4x between sessions, so it shows a change in the write path where an
events/s figure cannot.
"""

from __future__ import annotations

import sqlite3
import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path

WAL_HEADER = 32
FRAME_HEADER = 24


def pages_in_log(wal: Path) -> set[int]:
    """The page numbers of every valid frame in a WAL file (frames whose salts match the header's)."""
    data = wal.read_bytes()
    if len(data) < WAL_HEADER:
        return set()
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    found: set[int] = set()
    for offset in range(WAL_HEADER, len(data) - FRAME_HEADER - page_size + 1, FRAME_HEADER + page_size):
        if data[offset + 8 : offset + 16] != salts:
            break  # a frame left over from before the log restarted
        found.add(struct.unpack(">I", data[offset : offset + 4])[0])
    return found


def empty_log(database: Path) -> None:
    """Fold the whole log into the database and truncate it (waits for a writer or checkpoint under way)."""
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA busy_timeout=60000")
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.close()
    if busy:
        raise RuntimeError(f"{database}: the log could not be emptied (a reader kept an old snapshot)")


def owners(database: Path, pages: set[int]) -> dict[int, str]:
    """Which table or index each page belongs to (one pass of dbstat over the whole file)."""
    conn = sqlite3.connect(database)
    try:
        return {int(p): str(name) for name, p in conn.execute("SELECT name, pageno FROM dbstat") if p in pages}
    finally:
        conn.close()


def pages_written_by(database: Path, write: Callable[[], object]) -> Counter[str]:
    """Pages one write transaction dirties, by table or index ("new": pages the file grew by).

    ``write`` must commit exactly one transaction and nothing else may write
    meanwhile: the log is emptied first, so its frames afterwards are that
    transaction's pages, each once.
    """
    empty_log(database)
    write()
    pages = pages_in_log(database.with_name(database.name + "-wal"))
    named = owners(database, pages)
    return Counter(named.get(p, "new") for p in pages)
