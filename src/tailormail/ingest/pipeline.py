"""The ingest path: validated messages become committed events and profiles.

One call is one transaction: a batch is stored whole or not at all, and it is
acknowledged only after the commit.  Hooks (real-time segments, journeys) run
inside the same transaction and see exactly the events that were new.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy import Connection

from tailormail.clock import Clock, to_ms
from tailormail.gcpause import collection_paused
from tailormail.ingest import identity
from tailormail.ingest.messages import Message, parse_message, revenue_of
from tailormail.store import Store
from tailormail.store import events as event_q
from tailormail.store import profiles as profile_q
from tailormail.store.dialect import compact_json, tune_for_bulk_writes


@dataclass(frozen=True)
class StoredEvent:
    """An event as committed: what hooks downstream of ingest receive."""

    id: int
    profile_id: int
    message: Message


@dataclass
class IngestResult:
    """What one ingest call did."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    events: list[StoredEvent] = field(default_factory=list)


IngestHook = Callable[[Connection, list[StoredEvent], int], None]
"""Called inside the ingest transaction with the new events and ``now`` (ms)."""


class Ingestor:
    """Stores Segment messages; the one way events enter tailormail."""

    def __init__(self, store: Store, clock: Clock, hooks: Sequence[IngestHook] = ()) -> None:
        self.store = store
        self.clock = clock
        self.hooks: list[IngestHook] = list(hooks)

    def ingest_raw(
        self, raws: Sequence[Any], *, sent_at: str | None = None, max_bytes: int | None = None
    ) -> IngestResult:
        """Validate every raw message first, then store them all in one transaction."""
        now_ms = to_ms(self.clock.now())  # parse_raw and ingest each pause the cycle collector
        return self.ingest(parse_raw(raws, now_ms, sent_at=sent_at, max_bytes=max_bytes), now_ms=now_ms)

    def ingest(self, messages: Sequence[Message], *, now_ms: int | None = None) -> IngestResult:
        """Store validated messages in one transaction and run the hooks on new ones."""
        now_ms = to_ms(self.clock.now()) if now_ms is None else now_ms
        with collection_paused(), self.store.begin() as conn:
            return self.ingest_in(conn, messages, now_ms)

    def ingest_in(self, conn: Connection, messages: Sequence[Message], now_ms: int) -> IngestResult:
        """Store messages and run the hooks inside the caller's transaction (dry runs roll it back)."""
        result = IngestResult(received=len(messages))
        _larger_cache(conn)
        unique = first_of_each_id(messages)
        known = event_q.known_message_ids(conn, [m.message_id for m in unique])
        fresh = [m for m in unique if m.message_id not in known]
        if fresh:
            result.events = _store(conn, fresh, now_ms)
            for hook in self.hooks:
                hook(conn, result.events, now_ms)
        result.stored = len(result.events)
        result.duplicates = result.received - result.stored
        return result


def parse_raw(
    raws: Sequence[Any], received_ms: int, *, sent_at: str | None = None, max_bytes: int | None = None
) -> list[Message]:
    """Validate a batch of raw Segment messages; the first bad one raises, naming its field and index."""
    if max_bytes is not None and all_within(raws, max_bytes):
        max_bytes = None  # each message is smaller than the whole batch: no need to measure them one by one
    with collection_paused():
        return [
            parse_message(raw, index=i, received_ms=received_ms, sent_at=sent_at, max_bytes=max_bytes)
            for i, raw in enumerate(raws)
        ]


def all_within(raws: Sequence[Any], max_bytes: int) -> bool:
    """True when the whole batch, as compact JSON, fits in ``max_bytes``, so each message does too.

    One encoding of the batch instead of one per message; False (measure each)
    when it is larger or when orjson refuses a value.
    """
    try:
        return len(orjson.dumps(raws, default=str)) <= max_bytes
    except TypeError:
        return False


def _larger_cache(conn: Connection) -> None:
    """A larger SQLite page cache for connections that ingest, set once per connection.

    A batch reads and writes a random page of several indexes and of profiles
    per event; with the default 2 MB cache most of them were read again from
    the operating system for every batch and spilled before the commit.
    """
    if conn.dialect.name == "sqlite" and not conn.info.get(_CACHE_SET):
        tune_for_bulk_writes(conn)
        conn.info[_CACHE_SET] = True


_CACHE_SET = "tailormail_ingest_cache"


def first_of_each_id(messages: Sequence[Message]) -> list[Message]:
    """Drop repeats of a message id within one batch, keeping the first."""
    ids = list(map(_message_id, messages))
    if len(set(ids)) == len(ids):  # no repeats, the usual case: counted in C, no loop here
        return list(messages)
    seen: set[str] = set()
    out = []
    for m, mid in zip(messages, ids, strict=True):
        if mid not in seen:
            seen.add(mid)
            out.append(m)
    return out


_message_id = attrgetter("message_id")
_timestamp = attrgetter("timestamp")


def _store(conn: Connection, messages: list[Message], now_ms: int) -> list[StoredEvent]:
    resolution = identity.resolve_batch(conn, messages, now_ms)
    profile_ids = resolution.profile_ids
    update_profiles(conn, messages, resolution, now_ms)
    rows = [event_values(m, pid, now_ms) for m, pid in zip(messages, profile_ids, strict=True)]
    ids = {mid: eid for eid, mid in event_q.insert_event_values_returning(conn, rows)}
    return [
        StoredEvent(ids[m.message_id], pid, m)
        for m, pid in zip(messages, profile_ids, strict=True)
        if m.message_id in ids
    ]


def seen_range(messages: Sequence[Message], profile_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """The earliest and latest event time of each profile in a batch."""
    times = list(map(_timestamp, messages))
    # Start from each profile's first and last event (dict() keeps a key's last value, in C), then widen
    # where a batch is out of time order: two comparisons an event, no lookup, no new tuple.
    earliest = dict(zip(reversed(profile_ids), reversed(times), strict=True))
    latest = dict(zip(profile_ids, times, strict=True))
    for pid, ts in zip(profile_ids, times, strict=True):
        if ts < earliest[pid]:
            earliest[pid] = ts
        if ts > latest[pid]:
            latest[pid] = ts
    return {pid: (earliest[pid], last) for pid, last in latest.items()}


def update_profiles(conn: Connection, messages: list[Message], resolution: identity.Resolution, now_ms: int) -> None:
    """Merge identify traits into the batch's profiles and widen their first/last seen.

    A profile created for the batch takes its traits and its exact seen range
    in one UPDATE instead of two (a pull of new customers: every profile).
    """
    profile_ids, created = resolution.profile_ids, resolution.created
    seen = seen_range(messages, profile_ids)
    merged = merged_traits(conn, messages, profile_ids, blank=resolution.blank)
    new = {pid: (traits, *seen[pid]) for pid, traits in merged.items() if pid in created}
    if new:
        profile_q.set_new_profiles(conn, new, now_ms)
        merged = {pid: traits for pid, traits in merged.items() if pid not in new}
        seen = {pid: span for pid, span in seen.items() if pid not in new}
    profile_q.set_traits_many(conn, merged, now_ms)
    profile_q.touch_seen(conn, seen, created)


def merged_traits(
    conn: Connection, messages: list[Message], profile_ids: list[int], *, blank: Collection[int] = ()
) -> dict[int, dict[str, Any]]:
    """The traits of each profile identify calls change, merged over the stored ones, later messages winning."""
    updates: dict[int, dict[str, Any]] = {}
    for m, pid in zip(messages, profile_ids, strict=True):
        if m.type == "identify" and m.traits:
            updates.setdefault(pid, {}).update(m.traits)
    if not updates:
        return {}
    current = profile_q.traits_of(conn, [pid for pid in updates if pid not in blank])
    return {pid: {**current.get(pid, {}), **traits} for pid, traits in updates.items()}


def event_row(m: Message, profile_id: int, now_ms: int) -> dict[str, Any]:
    """The events-table row for a message."""
    return dict(zip(event_q.EVENT_COLUMNS, event_values(m, profile_id, now_ms), strict=True))


def event_values(m: Message, profile_id: int, now_ms: int) -> tuple[Any, ...]:
    """The events-table values of a message, in ``EVENT_COLUMNS`` order."""
    properties = m.traits if m.type == "identify" else m.properties
    if m.type == "group":
        properties = {**m.traits, "groupId": m.group_id}
    if m.type == "alias":
        properties = {"previousId": m.previous_id}
    revenue = m.revenue if m.type == "track" else None
    return (
        m.message_id,
        profile_id,
        m.anonymous_id,
        m.type,
        m.event,
        properties,
        m.context,
        revenue,
        m.timestamp,
        now_ms,
    )


def encoded_event_rows(messages: Sequence[Message], now_ms: int) -> list[list[Any]]:
    """``event_values`` of each message, properties and context already JSON text, profile id 0 (``set_profile_ids``).

    One pass, needing no database: the bulk path makes these rows while the
    chunk before commits.  Tracks, nearly all of a backfill, are made inline;
    building each row once instead of a values tuple and then its encoded copy
    took a third off this step.
    """
    encode = compact_json
    rows: list[list[Any]] = []
    add = rows.append
    for m in messages:
        if m.type == "track":  # event_values, unrolled: properties as they are, revenue from them
            properties, context = m.properties, m.context
            context_json = None if context is None else encode(context)
            add([m.message_id, 0, m.anonymous_id, "track", m.event, encode(properties), context_json,
                 revenue_of(properties), m.timestamp, now_ms])  # fmt: skip
        else:
            add(list(event_q.encoded_row(event_values(m, 0, now_ms))))
    return rows


def set_profile_ids(rows: list[list[Any]], profile_ids: Sequence[int]) -> None:
    """Fill in the profile id of each row of ``encoded_event_rows``, in order."""
    for row, pid in zip(rows, profile_ids, strict=True):
        row[1] = pid
