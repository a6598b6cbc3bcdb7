"""The ingest path on a real database: identity, idempotency, atomic batches."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tailormail.errors import PayloadTooLarge, ValidationError
from tailormail.ingest import identity
from tailormail.ingest.messages import Message
from tailormail.ingest.pipeline import (
    all_within,
    encoded_event_rows,
    event_values,
    first_of_each_id,
    seen_range,
    set_profile_ids,
)
from tailormail.runtime import Runtime
from tailormail.store import profiles as profile_q
from tailormail.store.events import encoded_row
from tailormail.store.schema import events, profile_seen, profiles


def track(mid: str, event: str = "product_view", **kw: object) -> dict[str, object]:
    return {"type": "track", "messageId": mid, "event": event, "timestamp": "2026-03-01T10:00:00Z", **kw}


def count(rt: Runtime, table) -> int:  # type: ignore[no-untyped-def]
    with rt.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_track_and_identify_land_with_traits_and_properties(runtime: Runtime) -> None:
    result = runtime.ingestor.ingest_raw(
        [
            {"type": "identify", "messageId": "m1", "userId": "u1", "traits": {"firstName": "Ada", "email": "a@x.io"}},
            track("m2", "purchase", userId="u1", properties={"revenue": 42.5, "category": "shoes"}),
        ]
    )
    assert (result.stored, result.duplicates) == (2, 0)
    with runtime.store.read() as conn:
        profile = profile_q.get_profile(conn, user_id="u1")
        assert profile is not None and profile["traits"] == {"firstName": "Ada", "email": "a@x.io"}
        row = conn.execute(select(events).where(events.c.message_id == "m2")).mappings().one()
    assert (row["event"], row["revenue"], row["properties"]["category"]) == ("purchase", 42.5, "shoes")
    assert row["profile_id"] == profile["id"]


def test_repeated_message_id_is_accepted_and_ignored(runtime: Runtime) -> None:
    runtime.ingestor.ingest_raw([track("m1", userId="u1")])
    again = runtime.ingestor.ingest_raw([track("m1", userId="u1"), track("m1", userId="u1")])
    assert (again.stored, again.duplicates) == (0, 2)
    assert count(runtime, events) == 1


def test_a_malformed_message_writes_nothing_of_its_batch(runtime: Runtime) -> None:
    with pytest.raises(ValidationError) as caught:
        runtime.ingestor.ingest_raw([track("ok", userId="u1"), {"type": "track", "messageId": "bad", "userId": "u2"}])
    assert caught.value.field == "event" and caught.value.index == 1
    assert "batch[1]" in caught.value.message
    assert count(runtime, events) == 0 and count(runtime, profiles) == 0


def test_anonymous_events_count_for_the_user_after_identify(runtime: Runtime) -> None:
    runtime.ingestor.ingest_raw([track("a1", anonymousId="anon-1"), track("a2", anonymousId="anon-1")])
    assert count(runtime, profiles) == 1
    runtime.ingestor.ingest_raw(
        [{"type": "identify", "messageId": "i1", "userId": "u9", "anonymousId": "anon-1", "traits": {"plan": "pro"}}]
    )
    runtime.ingestor.ingest_raw([track("a3", anonymousId="anon-1")])
    with runtime.store.read() as conn:
        profile = profile_q.get_profile(conn, user_id="u9")
        assert profile is not None
        owners = set(conn.execute(select(events.c.profile_id)).scalars())
        assert owners == {profile["id"]}
        assert profile_q.anonymous_ids(conn, profile["id"]) == ["anon-1"]
    assert count(runtime, profiles) == 1


def test_alias_merges_an_older_user_id_into_the_new_one(runtime: Runtime) -> None:
    runtime.ingestor.ingest_raw([track("o1", userId="old-id"), track("n1", userId="new-id")])
    runtime.ingestor.ingest_raw([{"type": "alias", "messageId": "al", "previousId": "old-id", "userId": "new-id"}])
    with runtime.store.read() as conn:
        assert profile_q.get_profile(conn, user_id="old-id") is None
        new = profile_q.get_profile(conn, user_id="new-id")
        assert new is not None
        assert set(conn.execute(select(events.c.profile_id)).scalars()) == {new["id"]}


def test_anonymous_and_identified_in_one_batch_end_on_one_profile(runtime: Runtime) -> None:
    runtime.ingestor.ingest_raw(
        [
            track("b1", anonymousId="anon-2"),
            {"type": "identify", "messageId": "b2", "userId": "u2", "anonymousId": "anon-2"},
            track("b3", anonymousId="anon-2"),
        ]
    )
    with runtime.store.read() as conn:
        assert len(set(conn.execute(select(events.c.profile_id)).scalars())) == 1
    assert count(runtime, profiles) == 1


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "nope", "userId": "u"}, "type"),
        ({"type": "track", "event": "x"}, "userId"),
        ({"type": "track", "userId": "u", "event": ""}, "event"),
        ({"type": "track", "userId": "u", "event": "x", "properties": [1]}, "properties"),
        ({"type": "track", "userId": "u", "event": "x", "timestamp": "yesterday"}, "timestamp"),
        ({"type": "alias", "userId": "u"}, "previousId"),
        ({"type": "group", "userId": "u"}, "groupId"),
        ("not an object", "message"),
    ],
)
def test_validation_names_the_field(runtime: Runtime, message: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        runtime.ingestor.ingest_raw([message])
    assert caught.value.field == field


def test_a_message_over_the_size_limit_is_refused(runtime: Runtime) -> None:
    big = track("big", userId="u", properties={"blob": "x" * 40_000})
    with pytest.raises(PayloadTooLarge):
        runtime.ingestor.ingest_raw([big], max_bytes=32 * 1024)


def test_a_large_message_among_small_ones_is_refused_with_its_index(runtime: Runtime) -> None:
    batch = [track(f"s{i}", userId="u") for i in range(3)] + [track("big", userId="u", properties={"b": "x" * 2_000})]
    with pytest.raises(PayloadTooLarge) as refused:
        runtime.ingestor.ingest_raw(batch, max_bytes=1_000)
    assert refused.value.index == 3
    assert runtime.ingestor.ingest_raw(batch, max_bytes=3_000).stored == 4  # the batch is larger; each one fits


WITHIN_CASES = [
    ("empty batch", [], 2, True),
    ("exactly the limit", [{"a": 1}], len('[{"a":1}]'), True),
    ("one byte over", [{"a": 1}], len('[{"a":1}]') - 1, False),
    ("a value orjson encodes through str", [{"t": {1, 2}}], 100, True),
    ("a key orjson refuses", [{1: "x"}], 100, False),
    ("an integer beyond 64 bits", [{"n": 2**70}], 100, False),
]


@pytest.mark.parametrize(("raws", "limit", "expected"), [c[1:] for c in WITHIN_CASES], ids=[c[0] for c in WITHIN_CASES])
def test_all_within_is_true_only_when_the_encoded_batch_fits(raws: list[object], limit: int, expected: bool) -> None:
    assert all_within(raws, limit) is expected


SEEN_CASES = [
    ("one event", [(1, 5)], {1: (5, 5)}),
    ("same time twice", [(1, 5), (1, 5)], {1: (5, 5)}),
    ("earlier then later", [(1, 5), (1, 3), (1, 9), (1, 4)], {1: (3, 9)}),
    ("two people interleaved", [(1, 5), (2, 7), (1, 2), (2, 8)], {1: (2, 5), 2: (7, 8)}),
    ("nothing", [], {}),
]


@pytest.mark.parametrize(("events", "expected"), [(e, x) for _, e, x in SEEN_CASES], ids=[c[0] for c in SEEN_CASES])
def test_seen_range_is_each_profiles_earliest_and_latest_time(
    events: list[tuple[int, int]], expected: dict[int, tuple[int, int]]
) -> None:
    messages = [Message("track", f"m{i}", "u", None, ts, "e") for i, (_, ts) in enumerate(events)]
    assert seen_range(messages, [pid for pid, _ in events]) == expected


TOUCH_CASES = [
    ("inside: unchanged", (12, 18), (10, 20)),
    ("the same range", (10, 20), (10, 20)),
    ("earlier", (5, 15), (5, 20)),
    ("later", (15, 25), (10, 25)),
    ("both ways", (1, 99), (1, 99)),
    ("before everything", (1, 2), (1, 20)),
]


@pytest.mark.parametrize(("seen", "expected"), [(s, x) for _, s, x in TOUCH_CASES], ids=[c[0] for c in TOUCH_CASES])
def test_touch_seen_widens_a_known_profiles_range_and_leaves_others_alone(
    runtime: Runtime, seen: tuple[int, int], expected: tuple[int, int]
) -> None:
    with runtime.store.begin() as conn:
        pid, other = profile_q.create_profiles(conn, ["u1", "u2"], 0)
        profile_q.touch_seen(conn, {pid: (10, 20), other: (30, 40)}, created={pid, other})
        profile_q.touch_seen(conn, {pid: seen})
        got = {p["id"]: (p["first_seen"], p["last_seen"]) for p in profile_q.iter_profiles(conn)}
    assert got == {pid: expected, other: (30, 40)}


CREATE_CASES = [
    ("identified", ["a", "b", "c"]),
    ("anonymous", [None, None]),
    ("mixed", [None, "a", None, "b"]),
    ("one", ["a"]),
]


@pytest.mark.parametrize("user_ids", [c[1] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES])
def test_create_profiles_returns_each_new_profiles_id_in_order(runtime: Runtime, user_ids: list[str | None]) -> None:
    with runtime.store.begin() as conn:
        profile_q.create_profiles(conn, ["earlier"], 0)  # ids do not start at 1
        ids = profile_q.create_profiles(conn, user_ids, 5)
        rows = {p["id"]: p for p in profile_q.iter_profiles(conn)}
    assert len(set(ids)) == len(user_ids)
    assert [rows[pid]["user_id"] for pid in ids] == user_ids
    assert all((rows[pid]["traits"], rows[pid]["first_seen"]) == ({}, 5) for pid in ids)


FIRST_CASES = [
    ("no repeats", ["a", "b", "c"], [0, 1, 2]),
    ("a repeat keeps the first", ["a", "b", "a", "c", "b"], [0, 1, 3]),
    ("all the same", ["a", "a", "a"], [0]),
    ("nothing", [], []),
]


@pytest.mark.parametrize(("ids", "kept"), [c[1:] for c in FIRST_CASES], ids=[c[0] for c in FIRST_CASES])
def test_first_of_each_id_keeps_the_first_message_of_each_id_in_order(ids: list[str], kept: list[int]) -> None:
    messages = [Message("track", mid, "u", None, i, "e") for i, mid in enumerate(ids)]
    assert first_of_each_id(messages) == [messages[i] for i in kept]


ROW_CASES = [
    ("track with revenue and context", Message("track", "t", "u", "a", 5, "buy", {"revenue": 9.5}, {}, {"ip": "1"})),
    ("track without properties", Message("track", "t", "u", None, 5, "view")),
    ("track with total, not revenue", Message("track", "t", "u", None, 5, "buy", {"total": 3})),
    ("track with a big integer", Message("track", "t", "u", None, 5, "x", {"n": 2**70})),
    ("identify", Message("identify", "i", "u", None, 5, None, {}, {"plan": "pro", "é": "ü"}, {"locale": "fr"})),
    ("page", Message("page", "p", None, "a", 5, "Home", {"url": "/"})),
    ("group", Message("group", "g", "u", None, 5, None, {}, {"size": 3}, group_id="acme")),
    ("alias", Message("alias", "al", "u", None, 5, previous_id="u0")),
]


@pytest.mark.parametrize("message", [c[1] for c in ROW_CASES], ids=[c[0] for c in ROW_CASES])
def test_encoded_event_rows_are_event_values_with_json_text(message: Message) -> None:
    rows = encoded_event_rows([message, message], 77)
    set_profile_ids(rows, [4, 8])
    assert rows == [list(encoded_row(event_values(message, pid, 77))) for pid in (4, 8)]


def test_a_batch_of_identified_people_resolves_to_their_profiles_creating_the_new_ones(runtime: Runtime) -> None:
    messages = [Message("track", f"m{i}", user, None, i, "e") for i, user in enumerate(["u3", "u1", "u2", "u3"])]
    with runtime.store.begin() as conn:
        (known,) = profile_q.create_profiles(conn, ["u1"], 0)
        resolution = identity.resolve_batch(conn, messages, 5)
        by_user = profile_q.profile_ids_by_user(conn, ["u1", "u2", "u3"])
    assert by_user["u1"] == known and by_user["u2"] < by_user["u3"]  # new ones in sorted user id order
    assert resolution.profile_ids == [by_user[m.user_id or ""] for m in messages]
    assert resolution.created == resolution.blank == {by_user["u2"], by_user["u3"]}


def test_a_merge_widens_the_survivors_seen_range_and_erasure_leaves_no_seen_row(runtime: Runtime) -> None:
    with runtime.store.begin() as conn:
        source, target, other = profile_q.create_profiles(conn, ["s", "t", "o"], 0)
        profile_q.touch_seen(conn, {source: (1, 50), target: (10, 20), other: (5, 6)}, created={source, target, other})
        profile_q.merge_profiles(conn, source, target, 99)
        profile_q.erase_profile(conn, other)
        seen = {p: (f, last) for p, f, last in conn.execute(select(profile_seen)).all()}
        survivor = profile_q.get_profile(conn, profile_id=target)
    assert seen == {target: (1, 50)}
    assert survivor is not None and (survivor["first_seen"], survivor["last_seen"], survivor["updated_at"]) == (
        1,
        50,
        99,
    )
