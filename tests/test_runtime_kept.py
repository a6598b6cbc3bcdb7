"""Objects a runtime keeps (senders, caches, the ingest group): made once, even when first asked for at once."""

from __future__ import annotations

import threading

from tailormail.runtime import Runtime


def test_an_object_is_made_once_and_then_kept(runtime: Runtime) -> None:
    made: list[object] = []

    def make() -> object:
        made.append(object())
        return made[-1]

    first = runtime.kept("thing", make)
    assert runtime.kept("thing", make) is first and made == [first]
    assert runtime.kept("other", make) is not first and len(made) == 2  # each name its own object


def test_threads_asking_at_once_share_one_object(runtime: Runtime) -> None:
    start, made, got = threading.Barrier(8), [], []  # every thread asks at the same moment

    def make() -> object:
        made.append(object())
        return made[-1]

    def ask() -> None:
        start.wait()
        got.append(runtime.kept("shared", make))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(made) == 1 and got == [made[0]] * 8
