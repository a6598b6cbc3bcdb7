"""Group commit on a real database: concurrent callers share transactions, and each keeps its promises."""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from tailormail.errors import StoreError, ValidationError
from tailormail.ingest.group import GroupAborted, GroupCommit, _store_group, _Ticket
from tailormail.ingest.messages import Message
from tailormail.ingest.pipeline import IngestResult, StoredEvent, parse_raw
from tailormail.runtime import Runtime
from tailormail.store.schema import events

WAIT_S = 30  # a bound on waits for other threads, never reached when the code works


def track(mid: str, event: str = "product_view", user: str = "u1") -> dict[str, Any]:
    return {"type": "track", "messageId": mid, "userId": user, "event": event, "timestamp": "2026-03-01T10:00:00Z"}


def parsed(*raws: dict[str, Any]) -> list[Message]:
    return parse_raw(list(raws), 1_772_000_000_000)


def stored_ids(rt: Runtime) -> list[str]:
    with rt.store.read() as conn:
        return sorted(conn.execute(select(events.c.message_id)).scalars())


class SignallingQueue(deque[_Ticket]):
    """The group's queue, telling the test each time a caller has joined it."""

    def __init__(self) -> None:
        super().__init__()
        self.joined = threading.Semaphore(0)

    def append(self, ticket: _Ticket) -> None:
        super().append(ticket)
        self.joined.release()


class Recorder:
    """A hook that records each transaction's batch; the first one waits until the test lets it go."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.inside = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn: Connection, stored: list[StoredEvent], now_ms: int) -> None:
        self.batches.append([event.message.message_id for event in stored])
        if len(self.batches) == 1:
            self.inside.set()
            assert self.release.wait(WAIT_S)


def test_callers_arriving_during_a_transaction_share_the_next_one(runtime: Runtime) -> None:
    recorder = Recorder()
    runtime.ingestor.hooks = [recorder]
    group = GroupCommit(runtime.ingestor)
    queue = group._queue = SignallingQueue()
    results: dict[str, IngestResult] = {}

    def call(name: str, raws: list[dict[str, Any]]) -> None:
        results[name] = group.ingest_raw(raws)

    first = threading.Thread(target=call, args=("a", [track("a1")]))
    first.start()
    assert recorder.inside.wait(WAIT_S)  # the first caller leads, and its transaction is under way
    others = [
        threading.Thread(target=call, args=("b", [track("b1", user="u2"), track("b2", user="u2")])),
        threading.Thread(target=call, args=("c", [track("c1", user="u3")])),
    ]
    for thread in others:
        thread.start()
    for _ in range(3):  # the first caller, then both others, have joined the queue
        assert queue.joined.acquire(timeout=WAIT_S)
    assert not results  # nobody is answered before the transaction holding their messages commits
    recorder.release.set()
    for thread in [first, *others]:
        thread.join(WAIT_S)

    assert recorder.batches[0] == ["a1"]
    assert sorted(recorder.batches[1]) == ["b1", "b2", "c1"]  # one transaction for both waiting callers
    assert len(recorder.batches) == 2
    assert {name: (r.received, r.stored, r.duplicates) for name, r in results.items()} == {
        "a": (1, 1, 0),
        "b": (2, 2, 0),
        "c": (1, 1, 0),
    }
    assert [e.message.message_id for e in results["b"].events] == ["b1", "b2"]  # each caller gets its own events
    assert stored_ids(runtime) == ["a1", "b1", "b2", "c1"]
    assert not group._busy and not group._queue


def test_a_batch_that_breaks_its_group_fails_alone(runtime: Runtime) -> None:
    def breaks_on_boom(conn: Connection, stored: Sequence[StoredEvent], now_ms: int) -> None:
        if any(event.message.event == "boom" for event in stored):
            raise RuntimeError("hook refused boom")

    runtime.ingestor.hooks = [breaks_on_boom]
    good, bad, also_good = (
        _Ticket(parsed(track("g1"))),
        _Ticket(parsed(track("x1", user="u2"), track("x2", "boom", user="u2"))),
        _Ticket(parsed(track("g2", user="u3"))),
    )
    _store_group(runtime.ingestor, [good, bad, also_good])
    assert isinstance(bad.error, RuntimeError) and bad.result is None
    assert good.result is not None and also_good.result is not None
    assert (good.result.stored, also_good.result.stored) == (1, 1)
    assert stored_ids(runtime) == ["g1", "g2"]  # nothing of the breaking batch, all of the others


def test_a_failure_of_the_database_itself_is_not_tried_again_caller_by_caller(runtime: Runtime) -> None:
    calls: list[int] = []

    def database_locked(conn: Connection, stored: Sequence[StoredEvent], now_ms: int) -> None:
        calls.append(len(stored))
        raise sqlite3.OperationalError("database is locked")  # as the driver raises it after its busy timeout

    runtime.ingestor.hooks = [database_locked]
    tickets = [_Ticket(parsed(track(f"m{i}", user=f"u{i}"))) for i in range(3)]
    _store_group(runtime.ingestor, tickets)
    assert calls == [3]  # one try for the group: alone, each would wait out the same lock again
    assert all(isinstance(t.error, StoreError) and "database is locked" in t.error.message for t in tickets)
    assert stored_ids(runtime) == []


def test_a_message_id_repeated_across_a_group_is_stored_once(runtime: Runtime) -> None:
    first, again = _Ticket(parsed(track("m1"), track("m2"))), _Ticket(parsed(track("m2"), track("m3")))
    _store_group(runtime.ingestor, [first, again])
    assert first.result is not None and again.result is not None
    assert (first.result.stored, first.result.duplicates) == (2, 0)
    assert (again.result.stored, again.result.duplicates) == (1, 1)
    assert stored_ids(runtime) == ["m1", "m2", "m3"]


class Interrupted(BaseException):
    """Stands for KeyboardInterrupt or SystemExit inside the leader's transaction."""


def test_an_interrupted_leader_answers_its_group_and_passes_the_lead_on(runtime: Runtime) -> None:
    def interrupts(conn: Connection, stored: Sequence[StoredEvent], now_ms: int) -> None:
        raise Interrupted

    runtime.ingestor.hooks = [interrupts]
    group = GroupCommit(runtime.ingestor)
    leader, follower, later = (_Ticket(parsed(track(f"m{i}", user=f"u{i}"))) for i in range(3))
    group.max_events = 2  # the third caller waits for the next group
    group._queue.extend([leader, follower, later])
    group._busy = leader.lead = True
    with pytest.raises(Interrupted):
        group._lead()
    assert isinstance(follower.error, GroupAborted) and follower.done.is_set()
    assert later.lead and later.done.is_set() and later.error is None  # woken to lead the next group
    assert group._busy and list(group._queue) == [later]
    assert stored_ids(runtime) == []


def test_a_malformed_batch_is_refused_in_its_own_call_and_joins_no_group(runtime: Runtime) -> None:
    group = GroupCommit(runtime.ingestor)
    with pytest.raises(ValidationError) as caught:
        group.ingest_raw([track("ok"), {"type": "track", "messageId": "bad", "userId": "u2"}])
    assert (caught.value.field, caught.value.index) == ("event", 1)
    assert not group._queue and not group._busy
    with runtime.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0


def test_one_caller_alone_gets_the_ingestors_own_result(runtime: Runtime) -> None:
    group = GroupCommit(runtime.ingestor)
    result = group.ingest_raw([track("m1"), track("m1")])
    assert (result.received, result.stored, result.duplicates) == (2, 1, 1)
    assert not group._busy
