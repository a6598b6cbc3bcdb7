"""Bulk ingestion for files and simulations: large batches, no per-event hooks.

Real-time hooks are skipped here on purpose: a backfill of millions of events
is followed by one batch refresh of segments, which is far cheaper than
evaluating every event as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from tailormail.gcpause import collection_paused
from tailormail.ingest import identity
from tailormail.ingest.messages import Message
from tailormail.ingest.pipeline import event_values, first_of_each_id, update_profiles
from tailormail.store import Store
from tailormail.store import events as event_q
from tailormail.store.dialect import tune_for_bulk_writes


@dataclass
class BulkResult:
    """Counts of one bulk ingestion."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0


def bulk_ingest(
    store: Store,
    messages: Iterable[Message],
    *,
    now_ms: int,
    batch_size: int = 20_000,
    on_progress: Callable[[int], None] | None = None,
) -> BulkResult:
    """Store messages in transactions of ``batch_size``; report progress per batch."""
    result = BulkResult()
    for chunk in _chunks(messages, batch_size):
        result.received += len(chunk)
        with collection_paused():
            fresh = _store_chunk(store, chunk, now_ms)
        result.stored += len(fresh)
        if on_progress:
            on_progress(len(chunk))
    result.duplicates = result.received - result.stored
    return result


def _store_chunk(store: Store, chunk: list[Message], now_ms: int) -> list[Message]:
    """Store one chunk in one transaction; return the messages that were new."""
    unique = first_of_each_id(chunk)
    with store.begin() as conn:
        tune_for_bulk_writes(conn)
        known = event_q.known_message_ids(conn, [m.message_id for m in unique])
        fresh = [m for m in unique if m.message_id not in known]
        if fresh:
            resolution = identity.resolve_batch(conn, fresh, now_ms)
            profile_ids = resolution.profile_ids
            update_profiles(conn, fresh, resolution, now_ms)
            event_q.insert_event_values(
                conn, [event_values(m, p, now_ms) for m, p in zip(fresh, profile_ids, strict=True)]
            )
    return fresh


def _chunks(items: Iterable[Message], size: int) -> Iterator[list[Message]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
