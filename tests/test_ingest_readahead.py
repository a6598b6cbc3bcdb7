"""Read-ahead: order kept, producer errors raised in place, an early exit stops and closes the producer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tailormail.ingest.readahead import read_ahead


def test_items_come_in_order_and_all_of_them() -> None:
    assert list(read_ahead(iter(range(50)))) == list(range(50))
    assert list(read_ahead([])) == []


def test_the_producer_works_on_another_thread() -> None:
    where: list[str] = []

    def items() -> Iterator[int]:
        where.append(threading.current_thread().name)
        yield 1

    assert list(read_ahead(items())) == [1]
    assert where == ["read-ahead"]


def test_a_producer_error_is_raised_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("page 3: HTTP 500")

    got: list[int] = []
    with pytest.raises(ValueError, match="page 3"):
        for item in read_ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_leaving_early_stops_the_producer_and_runs_its_cleanup() -> None:
    made: list[int] = []
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            for n in range(1000):
                made.append(n)
                yield n
        finally:
            closed.set()

    for item in read_ahead(items()):
        if item == 2:
            break
    assert closed.is_set()  # the generator's finally ran before the loop's exit returned
    assert len(made) <= 4  # one item ahead of the last one taken, at most
