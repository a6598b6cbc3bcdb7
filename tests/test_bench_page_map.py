"""Bench instruments: the page map names what a transaction writes; cache share and read calls read Linux."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.machine import log_write_share, os_cached_share, thread_read_calls
from bench.page_map import pages_in_log, pages_written_by


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    """A WAL database of 2,000 wide rows, kept open meanwhile as a workspace's pool keeps it.

    The last connection to close folds the log in and deletes it.
    """
    path = _database(tmp_path, 2000)
    keeper = sqlite3.connect(path)
    keeper.execute("SELECT count(*) FROM small").fetchall()
    yield path
    keeper.close()


def _database(tmp_path: Path, rows: int) -> Path:
    """A WAL database with a table of ``rows`` wide rows, an index on them, and a small second table."""
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE wide (id INTEGER PRIMARY KEY, key TEXT, body TEXT)")
        conn.execute("CREATE INDEX ix_wide_key ON wide (key)")
        conn.execute("CREATE TABLE small (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.executemany("INSERT INTO wide (key, body) VALUES (?, ?)", [(f"k{i:06d}", "x" * 500) for i in range(rows)])
        conn.execute("INSERT INTO small (n) VALUES (1)")
    conn.close()
    return path


def _write(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_autocheckpoint=0")  # this connection's commit must leave its frames in the log
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def test_one_transaction_is_mapped_to_the_pages_it_changed(db: Path) -> None:
    # One row of the small table: its one page, and nothing else.
    small = pages_written_by(db, lambda: _write(db, "UPDATE small SET n = n + 1"))
    assert small == {"small": 1}

    # Rows spread over the wide table: a page of it per row touched, each once, and no index page
    # (the indexed column does not change).
    spread = pages_written_by(db, lambda: _write(db, "UPDATE wide SET body = upper(body) WHERE id % 200 = 0"))
    assert set(spread) == {"wide"}
    assert spread["wide"] == 10

    # Changing the indexed column writes pages of the index too.
    keyed = pages_written_by(db, lambda: _write(db, "UPDATE wide SET key = 'z' || key WHERE id = 1"))
    assert keyed["wide"] == 1
    assert keyed["ix_wide_key"] >= 1


def test_frames_of_a_log_that_restarted_are_not_counted(db: Path) -> None:
    wal = db.with_name(db.name + "-wal")
    pages_written_by(db, lambda: _write(db, "UPDATE wide SET body = upper(body) WHERE id % 100 = 0"))
    before = len(pages_in_log(wal))
    assert before == 20
    # A checkpoint of everything, then a new write: the log starts over with new salts and the
    # new transaction overwrites only its first frames; the older frames behind it are stale.
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    conn.close()
    _write(db, "UPDATE small SET n = n + 1")
    assert wal.stat().st_size > 24 * 2 + 32 + 4096 * 2  # the old frames are still in the file
    assert len(pages_in_log(wal)) == 1


def test_an_empty_log_has_no_pages(tmp_path: Path) -> None:
    empty = tmp_path / "empty-wal"
    empty.write_bytes(b"")
    assert pages_in_log(empty) == set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mincore is read on Linux only")
def test_the_page_cache_share_of_a_file_just_written_is_high(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"y" * (64 * 4096))
    share = os_cached_share(str(path))
    assert share is not None
    assert 0.9 <= share <= 1.0  # written a moment ago: in memory (pages may be written back, not dropped)
    empty = tmp_path / "empty"
    empty.touch()
    assert os_cached_share(str(empty)) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/thread-self/io is Linux's")
def test_read_calls_count_this_threads_reads_only(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"z" * 4096)
    fd = os.open(path, os.O_RDONLY)
    try:
        before = thread_read_calls()
        assert before is not None
        for _ in range(100):
            os.pread(fd, 4096, 0)
        mine = thread_read_calls()
        assert mine is not None and mine - before >= 100
        other = threading.Thread(target=lambda: [os.pread(fd, 4096, 0) for _ in range(500)])
        other.start()
        other.join()
        after = thread_read_calls()
        assert after is not None and after - mine < 50  # the other thread's 500 reads are not ours
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("pages", "batch", "rate", "pairs", "share"),
    [
        (3_855, 1_000, 20_000, 64_268, 1.1997),  # session 11's VM: the log writes alone exceed one thread
        (3_855, 1_000, 20_000, 240_000, 0.32125),  # session 8's VM
        (1_000, 1_000, 10_000, 100_000, 0.1),
        (1_000, 500, 10_000, 100_000, 0.2),  # the same pages for half the events: twice the share
    ],
)
def test_log_write_share(pages: int, batch: int, rate: float, pairs: float, share: float) -> None:
    assert log_write_share(pages, batch, rate, pairs) == pytest.approx(share, rel=1e-4)
