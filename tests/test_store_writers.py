"""Writers of one SQLite engine queue in this process, whether they come through the Store or the engine."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from tailormail.store import Store
from tailormail.store.engine import _WRITERS, write_transaction


def queue_taken_elsewhere(store: Store) -> bool:
    """Whether another thread finds this store's writer queue busy (a non-blocking try: no waiting)."""
    result: list[bool] = []
    queue = _WRITERS[store.engine].queue

    def probe() -> None:
        got = queue.acquire(blocking=False)
        if got:
            queue.release()
        result.append(not got)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return result[0]


@pytest.mark.parametrize(
    ("name", "writer"),
    [
        ("Store.begin", lambda store: store.begin()),
        ("write_transaction on the engine (background threads)", lambda store: write_transaction(store.engine)),
    ],
)
def test_every_writer_of_an_engine_takes_its_one_queue(
    tmp_path: Path, name: str, writer: Callable[[Store], AbstractContextManager[Any]]
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'q.db'}")
    try:
        store.migrate()
        assert not queue_taken_elsewhere(store)
        with writer(store):
            assert queue_taken_elsewhere(store), name
        assert not queue_taken_elsewhere(store), name
    finally:
        store.close()
