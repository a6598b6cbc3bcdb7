"""The bulk path on a real database: dedupe across runs, identity, first/last seen, same rows as ingest."""

from __future__ import annotations

import gc
import sqlite3
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tailormail.clock import to_ms
from tailormail.errors import StoreError
from tailormail.ingest import bulk
from tailormail.ingest.bulk import bulk_ingest
from tailormail.ingest.messages import Message, parse_message
from tailormail.ingest.pipeline import event_values
from tailormail.runtime import Runtime
from tailormail.store import events as event_q
from tailormail.store import profiles as profile_q
from tailormail.store.schema import events, identity_links, profiles

DAY = 86_400_000


def msgs(rt: Runtime, raws: list[dict[str, Any]]) -> list[Message]:
    now = to_ms(rt.clock.now())
    return [parse_message(r, received_ms=now) for r in raws]


def at(rt: Runtime, days_ago: int) -> str:
    from tailormail.clock import from_ms

    return from_ms(to_ms(rt.clock.now()) - days_ago * DAY).isoformat()


def table_count(rt: Runtime, table: Any) -> int:
    with rt.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_dedupes_within_and_across_runs_and_counts_progress(runtime: Runtime) -> None:
    now = to_ms(runtime.clock.now())
    batch = msgs(
        runtime, [{"type": "track", "messageId": f"m{i}", "userId": f"u{i % 3}", "event": "x"} for i in range(7)]
    )
    progress: list[int] = []
    first = bulk_ingest(runtime.store, [*batch, batch[0]], now_ms=now, batch_size=3, on_progress=progress.append)
    assert (first.received, first.stored, first.duplicates) == (8, 7, 1)
    assert progress == [3, 3, 2]
    again = bulk_ingest(runtime.store, batch, now_ms=now, batch_size=4)
    assert (again.stored, again.duplicates) == (0, 7)
    assert table_count(runtime, events) == 7 and table_count(runtime, profiles) == 3


def test_identity_anonymous_then_identified_in_one_batch_and_across_batches(runtime: Runtime) -> None:
    now = to_ms(runtime.clock.now())
    raws = [
        {"type": "page", "messageId": "p1", "anonymousId": "a1", "name": "Home"},
        {"type": "page", "messageId": "p2", "anonymousId": "a2", "name": "Home"},
        {"type": "identify", "messageId": "i1", "userId": "u1", "anonymousId": "a1", "traits": {"plan": "pro"}},
        {"type": "track", "messageId": "t1", "anonymousId": "a1", "event": "view"},
    ]
    bulk_ingest(runtime.store, msgs(runtime, raws), now_ms=now, batch_size=2)
    with runtime.store.read() as conn:
        u1 = profile_q.get_profile(conn, user_id="u1")
        assert u1 is not None and u1["traits"] == {"plan": "pro"}
        owners = {m: p for m, p in conn.execute(select(events.c.message_id, events.c.profile_id))}
        links = {a: p for a, p in conn.execute(select(identity_links.c.anonymous_id, identity_links.c.profile_id))}
    assert owners["p1"] == owners["i1"] == owners["t1"] == u1["id"] != owners["p2"]
    assert links == {"a1": u1["id"], "a2": owners["p2"]}
    assert table_count(runtime, profiles) == 2  # u1 (with a1 merged in) and anonymous a2


def test_first_and_last_seen_follow_event_times_not_the_import_time(runtime: Runtime) -> None:
    now = to_ms(runtime.clock.now())
    old = [
        {"type": "track", "messageId": "o1", "userId": "u1", "event": "purchase", "timestamp": at(runtime, 400)},
        {"type": "track", "messageId": "o2", "userId": "u1", "event": "purchase", "timestamp": at(runtime, 300)},
    ]
    bulk_ingest(runtime.store, msgs(runtime, old), now_ms=now)
    with runtime.store.read() as conn:
        u1 = profile_q.get_profile(conn, user_id="u1")
    assert u1 and (u1["first_seen"], u1["last_seen"]) == (now - 400 * DAY, now - 300 * DAY)
    newer = [
        {"type": "track", "messageId": "n1", "userId": "u1", "event": "view", "timestamp": at(runtime, 350)},
        {"type": "track", "messageId": "n2", "userId": "u1", "event": "view", "timestamp": at(runtime, 10)},
        {"type": "track", "messageId": "n3", "userId": "u1", "event": "view", "timestamp": at(runtime, 500)},
    ]
    bulk_ingest(runtime.store, msgs(runtime, newer[:2]), now_ms=now)
    bulk_ingest(runtime.store, msgs(runtime, newer[2:]), now_ms=now)
    with runtime.store.read() as conn:
        u1 = profile_q.get_profile(conn, user_id="u1")
    assert u1 and (u1["first_seen"], u1["last_seen"]) == (now - 500 * DAY, now - 10 * DAY)


def test_bulk_and_real_time_paths_store_the_same_rows(runtime: Runtime) -> None:
    raws = [
        {"type": "identify", "messageId": "i1", "userId": "u1", "traits": {"email": "a@x.io"}},
        {"type": "track", "messageId": "t1", "userId": "u1", "event": "purchase", "timestamp": at(runtime, 2)}
        | {"properties": {"revenue": 5}, "context": {"ip": "10.0.0.1"}},
        {"type": "group", "messageId": "g1", "userId": "u1", "groupId": "acme", "traits": {"size": 3}},
        {"type": "alias", "messageId": "al", "previousId": "u0", "userId": "u1"},
    ]
    runtime.ingestor.ingest_raw(raws)
    with runtime.store.begin() as conn:
        columns = [c for c in events.c if c.name not in ("id", "profile_id")]  # profiles get re-created
        real_time = sorted(tuple(r) for r in conn.execute(select(*columns)))
        conn.execute(events.delete())
        conn.execute(profiles.delete())
    bulk_ingest(runtime.store, msgs(runtime, raws), now_ms=to_ms(runtime.clock.now()))
    with runtime.store.read() as conn:
        bulk = sorted(tuple(r) for r in conn.execute(select(*columns)))
        u1 = profile_q.get_profile(conn, user_id="u1")
    assert bulk == real_time
    assert u1 and u1["traits"] == {"email": "a@x.io"}


def test_two_bulk_inserts_in_one_transaction_each_count_their_new_rows(runtime: Runtime) -> None:
    # PostgreSQL stages each insert in a temporary table: the second must not meet the first's.
    now = to_ms(runtime.clock.now())
    raws = [{"type": "track", "messageId": f"m{i}", "userId": "u1", "event": "view"} for i in range(3)]
    rows = [event_q.encoded_row(event_values(m, 1, now)) for m in msgs(runtime, raws)]
    with runtime.store.begin() as conn:
        assert event_q.insert_encoded_events(conn, rows[:2]) == 2
        assert event_q.insert_encoded_events(conn, rows[1:]) == 1
    with runtime.store.read() as conn:
        assert sorted(conn.execute(select(events.c.message_id)).scalars()) == ["m0", "m1", "m2"]


def test_a_chunk_written_on_the_guess_that_it_is_new_is_rolled_back_when_it_was_not(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = to_ms(runtime.clock.now())
    stored = [
        {"type": "identify", "messageId": "i0", "userId": "u0", "traits": {"plan": "free"}, "timestamp": at(runtime, 9)}
    ]
    bulk_ingest(runtime.store, msgs(runtime, stored), now_ms=now)
    lookups: list[int] = []
    real_lookup = event_q.known_message_ids
    monkeypatch.setattr(event_q, "known_message_ids", lambda conn, ids: lookups.append(1) or real_lookup(conn, ids))
    again = {**stored[0], "traits": {"plan": "pro"}, "timestamp": at(runtime, 1)}  # stored id, other content
    later = [
        *({"type": "track", "messageId": f"n{i}", "userId": f"u{i}", "event": "x"} for i in (1, 2, 3, 4)),
        again,
        {"type": "track", "messageId": "n5", "userId": "u0", "event": "x", "timestamp": at(runtime, 5)},
    ]
    result = bulk_ingest(runtime.store, msgs(runtime, later), now_ms=now, batch_size=2)
    assert (result.received, result.stored, result.duplicates) == (6, 5, 1)
    assert len(lookups) == 2  # the first chunk, none for the second (guessed new), the third after its rollback
    with runtime.store.read() as conn:
        u0 = profile_q.get_profile(conn, user_id="u0")
        stamps = dict(conn.execute(select(events.c.message_id, events.c.ts)).all())
    assert u0 and u0["traits"] == {"plan": "free"}  # the repeated identify changed nothing
    assert (u0["first_seen"], u0["last_seen"]) == (now - 9 * DAY, now - 5 * DAY)
    assert stamps["i0"] == now - 9 * DAY and sorted(stamps) == ["i0", "n1", "n2", "n3", "n4", "n5"]
    assert table_count(runtime, profiles) == 5


def failing_source(rt: Runtime, good: int) -> Iterator[Message]:
    """``good`` new messages, then an error from the source itself (a file that cannot be read further)."""
    yield from msgs(rt, [{"type": "track", "messageId": f"m{i}", "userId": f"u{i}", "event": "x"} for i in range(good)])
    raise OSError("the file went away")


def test_an_error_preparing_a_chunk_surfaces_after_the_chunks_before_it_commit(runtime: Runtime) -> None:
    with pytest.raises(OSError, match="went away"):
        bulk_ingest(runtime.store, failing_source(runtime, 5), now_ms=to_ms(runtime.clock.now()), batch_size=2)
    assert table_count(runtime, events) == 4  # two whole chunks; the third never had all its messages
    assert table_count(runtime, profiles) == 4


def test_a_value_that_cannot_be_encoded_stops_the_import_before_its_chunk_writes(runtime: Runtime) -> None:
    batch = msgs(runtime, [{"type": "track", "messageId": f"m{i}", "userId": f"u{i}", "event": "x"} for i in range(4)])
    batch[3].properties["when"] = object()  # encoded on the helper thread
    with pytest.raises(TypeError):
        bulk_ingest(runtime.store, batch, now_ms=to_ms(runtime.clock.now()), batch_size=2)
    assert table_count(runtime, events) == table_count(runtime, profiles) == 2


def test_an_error_writing_a_chunk_rolls_the_whole_chunk_back(runtime: Runtime) -> None:
    now = to_ms(runtime.clock.now())
    batch = msgs(runtime, [{"type": "track", "messageId": f"m{i}", "userId": f"u{i}", "event": "x"} for i in range(4)])
    batch[3] = Message(None, "bad", "u3", None, now)  # type: ignore[arg-type]  # events.type is NOT NULL
    with pytest.raises(StoreError) as caught:
        bulk_ingest(runtime.store, batch, now_ms=now, batch_size=2)
    assert isinstance(caught.value.__cause__, (sqlite3.IntegrityError, IntegrityError))  # the driver's error, kept
    with runtime.store.read() as conn:
        users = set(conn.execute(select(profiles.c.user_id)).scalars())
    assert users == {"u0", "u1"} and table_count(runtime, events) == 2  # u2 was created, then rolled back


class Cycle:
    """An object that refers to itself: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_the_collector_is_paused_for_an_import_frees_its_cycles_every_few_chunks_and_comes_back(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "COLLECT_EVERY", 2)
    seen: list[tuple[bool, bool]] = []  # (collector on, the first cycle still alive) as each message is read

    batch = msgs(runtime, [{"type": "track", "messageId": f"m{i}", "userId": "u", "event": "x"} for i in range(4)])

    def source() -> Iterator[Message]:
        cycle = weakref.ref(Cycle())
        for message in batch:
            seen.append((gc.isenabled(), cycle() is not None))
            yield message

    gc.enable()
    bulk.bulk_ingest(runtime.store, source(), now_ms=to_ms(runtime.clock.now()), batch_size=1)
    assert gc.isenabled()
    assert [on for on, _ in seen] == [False] * 4  # paused while every message was read
    # The helper thread reads message 3 while chunk 2 commits, so whether the collection after chunk 2 came
    # first is a race; messages 1 and 2 are read before it and message 4 after it.
    assert [alive for _, alive in seen[:2]] == [True, True]
    assert seen[3] == (False, False)  # freed by the young collection after the second chunk


def test_a_bulk_load_leaves_planner_statistics_on_postgresql(runtime: Runtime) -> None:
    if runtime.store.dialect != "postgresql":
        pytest.skip("needs PostgreSQL: runs in the pass with TAILORMAIL_TEST_DATABASE_URL set")
    batch = msgs(runtime, [{"type": "track", "messageId": f"m{i}", "userId": f"u{i}", "event": "x"} for i in range(3)])
    bulk_ingest(runtime.store, batch, now_ms=to_ms(runtime.clock.now()))
    with runtime.store.read() as conn:
        analyzed = dict(
            conn.exec_driver_sql(
                "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE schemaname = current_schema()"
            ).all()
        )
    assert analyzed["events"] and analyzed["profiles"] and analyzed["identity_links"]
