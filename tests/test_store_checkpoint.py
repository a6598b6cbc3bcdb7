"""The write-ahead log is folded in by a background thread, not by the committing writer."""

from __future__ import annotations

from pathlib import Path

from tailormail.store import Store
from tailormail.store.checkpoint import BACKSTOP_PAGES, LOG_SIZE_LIMIT
from tailormail.store.engine import write_transaction


def _write(store: Store, rows: int) -> None:
    with store.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (v TEXT)")
        conn.exec_driver_sql("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(rows)])


def test_writers_leave_checkpoints_to_the_thread(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES
            assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == LOG_SIZE_LIMIT
    finally:
        store.close()


def test_a_commit_wakes_the_thread_which_folds_the_log_in(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    assert store.checkpointer is not None
    try:
        assert store.checkpointer.checkpoints == 0  # no thread and no checkpoint before the first write
        _write(store, 3000)  # ~1.5 MB: over SQLite's default 1,000-page checkpoint, under our backstop
        assert store.checkpointer.ran.wait(timeout=30), "the checkpoint thread never ran"
        assert store.checkpointer.checkpoints >= 1
        busy, log_pages, done = store.checkpointer.checkpoint() or (1, 0, -1)
        assert busy == 0 and done == log_pages  # everything in the log is in the database now
        with store.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 3000
    finally:
        store.close()
    assert store.checkpointer.checkpoints >= 1


def test_a_writer_holding_only_the_engine_wakes_the_thread_too(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    assert store.checkpointer is not None
    try:
        with write_transaction(store.engine) as conn:  # as the recommendation trainer's thread writes
            conn.exec_driver_sql("CREATE TABLE t (v TEXT)")
        assert store.checkpointer.ran.wait(timeout=30), "the commit did not wake the checkpoint thread"
    finally:
        store.close()


def test_close_stops_the_thread(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    assert store.checkpointer is not None
    _write(store, 10)
    thread = store.checkpointer._thread  # this store's own: other tests' stores may start or stop theirs meanwhile
    assert thread is not None and thread.is_alive() and thread.name == "tailormail-wal-checkpoint"
    store.close()
    assert not thread.is_alive()
    reopened = Store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with reopened.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 10
    finally:
        reopened.close()


def test_in_memory_databases_have_no_checkpointer() -> None:
    store = Store("sqlite://")
    try:
        assert store.checkpointer is None
        _write(store, 5)
    finally:
        store.close()


def test_a_removed_database_is_not_created_again(tmp_path: Path) -> None:
    folder = tmp_path / "a folder #1"  # characters a file: URI must quote
    folder.mkdir()
    store = Store(f"sqlite:///{folder / 'w.db'}")
    assert store.checkpointer is not None
    _write(store, 10)
    assert store.checkpointer.checkpoint() is not None  # the quoted path reaches the file
    store.close()
    for name in ("w.db", "w.db-wal", "w.db-shm"):
        (folder / name).unlink(missing_ok=True)
    assert store.checkpointer.checkpoint() is None
    assert not (folder / "w.db").exists()
