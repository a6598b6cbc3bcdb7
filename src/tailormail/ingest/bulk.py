"""Bulk ingestion for files and simulations: large batches, no per-event hooks.

Real-time hooks are skipped here on purpose: a backfill of millions of events
is followed by one batch refresh of segments, which is far cheaper than
evaluating every event as it arrives.

Two things keep the path near SQLite's own insert rate:

* The next chunk is prepared (read from the source, repeats dropped, event
  rows built and JSON encoded: nothing that needs the database) on a helper
  thread while this one commits.  SQLite's commit runs outside the GIL, so the
  two overlap.  Only the commit: the inserts take the GIL back after every row,
  and Python work beside them just takes turns with them.
* Dedupe against the store is a guess, checked, once the import has shown it
  is writing new events: after a chunk none of whose ids were stored, the next
  chunk is written without looking its ids up, and the insert, which skips
  known message ids anyway, reports how many rows went in.  All of them: no id
  was stored, exactly what the lookup would have found.  Fewer: the chunk's
  transaction is rolled back and the chunk is written again after the lookup.
  A file imported twice looks every chunk up (each finds its ids stored).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import Connection

from tailormail.gcpause import collection_paused
from tailormail.ingest import identity
from tailormail.ingest.messages import Message
from tailormail.ingest.pipeline import encoded_event_rows, first_of_each_id, set_profile_ids, update_profiles
from tailormail.store import Store
from tailormail.store import events as event_q
from tailormail.store.dialect import tune_for_bulk_writes
from tailormail.store.maintenance import refresh_statistics

COLLECT_EVERY = 10
"""Chunks between two collections of young cyclic garbage while the collector is paused for an import.

Paused per chunk, the collector came back on with the next chunk already
prepared and alive, and scanned all of it: 5 % of the import's time.  Paused
for the whole import, cycles (rare: the rows and messages are freed by
reference counting) would wait for its end; every few chunks one young
collection frees them at a tenth of that cost."""


@dataclass
class BulkResult:
    """Counts of one bulk ingestion."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0


@dataclass
class _Chunk:
    """One transaction's worth of messages with the work that needs no database done."""

    received: int
    unique: list[Message]
    """The first message of each id, in order."""
    rows: list[list[Any]]
    """Their event rows (``encoded_event_rows``), profile ids to fill in."""


def bulk_ingest(
    store: Store,
    messages: Iterable[Message],
    *,
    now_ms: int,
    batch_size: int = 20_000,
    on_progress: Callable[[int], None] | None = None,
) -> BulkResult:
    """Store messages in transactions of ``batch_size``; report progress per batch.

    ``messages`` is read on a helper thread from the second chunk on (one chunk
    ahead, never two at once): a source tied to its thread, such as a SQLite
    cursor, must be read into a list first.
    """
    result = BulkResult()
    all_new = False  # the first chunk looks its ids up: a re-run is known from its first chunk
    with collection_paused(), ThreadPoolExecutor(1, thread_name_prefix="tailormail-bulk-prepare") as helper:
        ahead = _Ahead(_prepared_chunks(messages, batch_size, now_ms), helper)
        for number, chunk in enumerate(iter(ahead.take, None), start=1):
            stored, all_new = _store_chunk(store, chunk, now_ms, guess_new=all_new, before_commit=ahead.start)
            result.received += chunk.received
            result.stored += stored
            if on_progress:
                on_progress(chunk.received)
            if number % COLLECT_EVERY == 0:
                gc.collect(0)  # the rare cycle of the chunks since the last one, freed while the import goes on
    result.duplicates = result.received - result.stored
    if result.stored and store.dialect == "postgresql":  # SQLite: the queries were written for its default plans
        with store.begin() as conn:
            refresh_statistics(conn)
    return result


class _Ahead:
    """The chunks, the next one prepared on a helper thread from the moment the current one starts to commit."""

    def __init__(self, chunks: Iterator[_Chunk], helper: ThreadPoolExecutor) -> None:
        self.chunks = chunks
        self.helper = helper
        self.pending: Future[_Chunk | None] | None = None

    def start(self) -> None:
        """Begin preparing the next chunk, unless it is already under way."""
        if self.pending is None:
            self.pending = self.helper.submit(next, self.chunks, None)

    def take(self) -> _Chunk | None:
        """The next chunk (None after the last); an error of the helper is raised here."""
        pending, self.pending = self.pending, None
        return next(self.chunks, None) if pending is None else pending.result()


def _prepared_chunks(messages: Iterable[Message], size: int, now_ms: int) -> Iterator[_Chunk]:
    iterator = iter(messages)
    while batch := list(islice(iterator, size)):
        unique = first_of_each_id(batch)
        yield _Chunk(len(batch), unique, encoded_event_rows(unique, now_ms))


class _SomeWereStored(Exception):
    """A chunk written on the guess that its ids were new held stored ones: its transaction is rolled back."""


def _store_chunk(
    store: Store, chunk: _Chunk, now_ms: int, *, guess_new: bool, before_commit: Callable[[], None]
) -> tuple[int, bool]:
    """Store one chunk in one transaction; (how many of its messages were new, whether every one was)."""
    if guess_new:
        try:
            with store.begin() as conn:
                _write(conn, chunk.unique, chunk.rows, now_ms, all_new=True)
                before_commit()
            return len(chunk.unique), True
        except _SomeWereStored:
            pass  # nothing of the chunk was kept; write it again, looking its ids up first
    with store.begin() as conn:
        known = event_q.known_message_ids(conn, [m.message_id for m in chunk.unique])
        fresh, rows = chunk.unique, chunk.rows
        if known:
            kept = [i for i, m in enumerate(fresh) if m.message_id not in known]
            fresh, rows = [fresh[i] for i in kept], [rows[i] for i in kept]
        _write(conn, fresh, rows, now_ms)
        before_commit()
    return len(fresh), not known


def _write(
    conn: Connection, fresh: list[Message], rows: list[list[Any]], now_ms: int, *, all_new: bool = False
) -> None:
    """Profiles, identity links and event rows of messages not stored yet (``all_new``: a guess, checked here)."""
    tune_for_bulk_writes(conn)
    if not fresh:
        return
    resolution = identity.resolve_batch(conn, fresh, now_ms)
    update_profiles(conn, fresh, resolution, now_ms)
    set_profile_ids(rows, resolution.profile_ids)
    if event_q.insert_encoded_events(conn, rows) != len(rows) and all_new:
        raise _SomeWereStored
