"""Read ahead: produce the next item (fetch a page, read a stream batch) on a thread while this one is stored.

The store's commit and the network both wait outside Python, so the two overlap.
Items keep their order; an error in the producer is raised at the consumer's
next step, in its place; leaving the loop early stops the producer.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()
"""Put by the producer after its last item."""


class _Raised:
    """The producer's exception, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterable[T]) -> Iterator[T]:
    """Iterate ``items`` on a thread, producing one item ahead of the caller, no more.

    One, not more: a stream batch read ahead stays unacknowledged until its
    own commit, so a consumer that stops leaves at most one extra batch pending.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                handoff.put(item)
                handoff.join()  # wait until the caller takes it before producing the next
                if stop.is_set():
                    return
            handoff.put(_DONE)
        except BaseException as exc:
            handoff.put(_Raised(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's own cleanup (an HTTP client, a file) runs here, on its thread

    def take(timeout: float | None = None) -> Any:
        item = handoff.get(timeout=timeout)
        handoff.task_done()
        return item

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = take()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to hand over its item
            with contextlib.suppress(queue.Empty):
                take(timeout=0.05)
        thread.join()
