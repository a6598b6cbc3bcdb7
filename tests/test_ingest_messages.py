"""Message validation: the fast path for well-formed messages gives exactly what the field-by-field checks give."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from tailormail.errors import PayloadTooLarge, ValidationError
from tailormail.ingest import messages
from tailormail.ingest.messages import Message, parse_message

NOW = 1_780_000_000_000


class Name(str):
    """A str subclass: never taken by the fast path, still accepted."""


T = {"type": "track", "event": "buy", "userId": "u1", "messageId": "m1"}

CASES: list[tuple[str, Any, dict[str, Any]]] = [
    # (what, raw message, parse_message keyword arguments)
    ("plain track", T, {}),
    ("track with everything", {**T, "properties": {"total": 5}, "context": {"ip": "1.2.3.4"},
                               "timestamp": "2026-02-10T10:00:00Z", "anonymousId": "a1"}, {}),
    ("identify", {"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"plan": "pro"}}, {}),
    ("identify, traits only in context", {"type": "identify", "userId": "u1", "messageId": "m1",
                                          "context": {"traits": {"plan": "pro"}}}, {}),
    ("identify, context traits not an object", {"type": "identify", "userId": "u1", "messageId": "m1",
                                                "context": {"traits": "pro"}}, {}),
    ("identify, traits beside context traits", {"type": "identify", "userId": "u1", "messageId": "m1",
                                                "traits": {"a": 1}, "context": {"traits": {"b": 2}}}, {}),
    ("identify with an event", {"type": "identify", "userId": "u1", "messageId": "m1", "event": " x "}, {}),
    ("identify with a non-text event", {"type": "identify", "userId": "u1", "messageId": "m1", "event": 5}, {}),
    ("page with a name", {"type": "page", "userId": "u1", "messageId": "m1", "name": "  Home "}, {}),
    ("page with a blank name", {"type": "page", "userId": "u1", "messageId": "m1", "name": "  "}, {}),
    ("page with a non-text name", {"type": "page", "userId": "u1", "messageId": "m1", "name": 7}, {}),
    ("screen without a name", {"type": "screen", "anonymousId": "a1", "messageId": "m1", "event": "x"}, {}),
    ("group", {"type": "group", "userId": "u1", "messageId": "m1", "groupId": 42, "traits": {"n": 1}}, {}),
    ("group without groupId", {"type": "group", "userId": "u1", "messageId": "m1"}, {}),
    ("alias", {"type": "alias", "userId": "u1", "previousId": "a0", "messageId": "m1"}, {}),
    ("alias without previousId", {"type": "alias", "userId": "u1", "messageId": "m1"}, {}),
    ("track with previousId and groupId", {**T, "previousId": 3, "groupId": "g"}, {}),
    ("track with a bad previousId", {**T, "previousId": [1]}, {}),
    ("integer ids", {**T, "userId": 12, "anonymousId": 0, "messageId": 7}, {}),
    ("empty userId, anonymousId set", {**T, "userId": "", "anonymousId": "a1"}, {}),
    ("no id at all", {"type": "track", "event": "buy", "messageId": "m1"}, {}),
    ("boolean userId", {**T, "userId": True}, {}),
    ("str subclass userId", {**T, "userId": Name("u1")}, {}),
    ("messageId missing (derived)", {"type": "track", "event": "buy", "userId": "u1"}, {}),
    ("messageId empty", {**T, "messageId": ""}, {}),
    ("messageId a list", {**T, "messageId": ["m"]}, {}),
    ("track without event", {"type": "track", "userId": "u1", "messageId": "m1"}, {}),
    ("track with a blank event", {**T, "event": "   "}, {}),
    ("track with a padded event", {**T, "event": "  buy "}, {}),
    ("track with a number event", {**T, "event": 3}, {}),
    ("unknown type", {**T, "type": "purchase"}, {}),
    ("no type", {"event": "buy", "userId": "u1", "messageId": "m1"}, {}),
    ("type a list", {**T, "type": ["track"]}, {}),
    ("type an object", {**T, "type": {"track": 1}}, {}),
    ("forced type", {"event": "buy", "userId": "u1", "messageId": "m1"}, {"forced_type": "track"}),
    ("forced type over another", {**T, "type": "identify"}, {"forced_type": "page"}),
    ("properties a list", {**T, "properties": [1]}, {}),
    ("properties null", {**T, "properties": None}, {}),
    ("traits text", {**T, "traits": "x"}, {}),
    ("context text", {**T, "context": "x"}, {}),
    ("timestamp with offset", {**T, "timestamp": "2026-02-10T10:00:00+02:00"}, {}),
    ("timestamp naive", {**T, "timestamp": "2026-02-10T10:00:00.123"}, {}),
    ("timestamp a date", {**T, "timestamp": "2026-02-10"}, {}),
    ("timestamp padded", {**T, "timestamp": " 2026-02-10T10:00:00Z "}, {}),
    ("timestamp not a time", {**T, "timestamp": "yesterday"}, {}),
    ("timestamp a number", {**T, "timestamp": 1700000000}, {}),
    ("timestamp empty", {**T, "timestamp": ""}, {}),
    ("timestamp empty, originalTimestamp set", {**T, "timestamp": "", "originalTimestamp": "2026-02-10T10:00:00Z"},
     {}),
    ("originalTimestamp empty", {**T, "originalTimestamp": ""}, {}),
    ("originalTimestamp with sentAt", {**T, "originalTimestamp": "2026-02-10T10:00:00Z",
                                       "sentAt": "2026-02-10T10:00:05Z"}, {}),
    ("originalTimestamp with the batch's sentAt", {**T, "originalTimestamp": "2026-02-10T10:00:00Z"},
     {"sent_at": "2026-02-10T09:00:00Z"}),
    ("originalTimestamp with a bad sentAt", {**T, "originalTimestamp": "2026-02-10T10:00:00Z", "sentAt": "soon"}, {}),
    ("timestamp and originalTimestamp", {**T, "timestamp": "2026-02-10T10:00:00Z",
                                         "originalTimestamp": "2026-01-01T00:00:00Z", "sentAt": "2026-03-01"}, {}),
    ("a dict subclass", OrderedDict(T), {}),
    ("not an object", ["track"], {}),
    ("null", None, {}),
    ("with an index", {**T, "event": ""}, {"index": 3}),
    ("under the size limit", T, {"max_bytes": 1000}),
    ("over the size limit", {**T, "properties": {"x": "y" * 200}}, {"max_bytes": 100, "index": 2}),
    ("invalid and over the size limit", {**T, "type": "nope", "properties": {"x": "y" * 200}}, {"max_bytes": 100}),
]  # fmt: skip


def outcome(parse: Any, raw: Any, kwargs: dict[str, Any]) -> Any:
    """A Message, or the error's class, text, field and index."""
    try:
        return parse(raw, **kwargs)
    except ValidationError as exc:
        return (type(exc).__name__, exc.message, exc.field, exc.index)


def reference(raw: Any, **kwargs: Any) -> Message:
    """The field-by-field checks alone, without the fast path."""
    return messages._checked(
        raw,
        kwargs.get("index"),
        kwargs["received_ms"],
        kwargs.get("sent_at"),
        kwargs.get("forced_type"),
        kwargs.get("max_bytes"),
    )


@pytest.mark.parametrize(("what", "raw", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_fast_path_gives_exactly_the_checked_result(what: str, raw: Any, kwargs: dict[str, Any]) -> None:
    kwargs = {"received_ms": NOW, **kwargs}
    fast, checked = outcome(parse_message, raw, kwargs), outcome(reference, raw, kwargs)
    assert fast == checked
    if isinstance(fast, Message):  # same values, and the same types (JSON columns are written from these)
        assert [type(v) for v in vars(fast).values()] == [type(v) for v in vars(checked).values()]


@pytest.mark.parametrize(
    ("raw", "kwargs", "error"),
    [
        ({**T, "event": ""}, {"index": 3}, ("track needs a non-empty string event at batch[3]", "event", 3)),
        ({**T, "timestamp": "yesterday"}, {}, ("timestamp 'yesterday' is not an ISO-8601 time", "timestamp", None)),
        ({**T, "userId": True, "index": 0}, {"index": 1}, ("userId must be a string at batch[1]", "userId", 1)),
        ({**T, "properties": [1]}, {}, ("properties must be an object", "properties", None)),
        ({**T, "messageId": ""}, {"index": 0}, ("messageId must be a non-empty string at batch[0]", "messageId", 0)),
        (["x"], {"index": 9}, ("message must be a JSON object at batch[9]", "message", 9)),
    ],
)
def test_errors_name_the_field_and_the_index(raw: Any, kwargs: dict[str, Any], error: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_message(raw, received_ms=NOW, **kwargs)
    assert (caught.value.message, caught.value.field, caught.value.index) == error


def test_size_limit_is_checked_before_the_fields() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        parse_message({"type": "nope", "x": "y" * 200}, received_ms=NOW, max_bytes=100, index=4)
    assert caught.value.index == 4 and "over the 100-byte limit" in caught.value.message


def test_timestamps_are_read_the_same_from_the_cache() -> None:
    raw = {**T, "timestamp": "2026-02-10T10:00:00.250+01:00"}
    first, again = parse_message(raw, received_ms=NOW), parse_message(dict(raw), received_ms=NOW)
    assert first.timestamp == again.timestamp == 1_770_714_000_250


@pytest.mark.parametrize(
    "raw",
    [
        T,
        {"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"a": 1}, "context": {"source": {}}},
        {"type": "page", "anonymousId": "a1", "messageId": "m1", "name": "Home", "timestamp": "2026-02-10"},
    ],
)
def test_well_formed_messages_take_the_fast_path(raw: dict[str, Any]) -> None:
    assert messages._well_formed(raw, NOW, None) == messages._checked(raw, None, NOW, None, None, None)


VALUES: dict[str, list[Any]] = {
    "type": ["track", "identify", "page", "screen", "group", "alias", "other", None, 3, ["track"]],
    "userId": ["u1", "", 5, 0, True, None, [1], Name("u")],
    "anonymousId": ["a1", "", 7, None, {"a": 1}],
    "messageId": ["m1", "", 9, None, 1.5, ["m"]],
    "previousId": [None, "p0", 4, ""],
    "groupId": [None, "g1", 0],
    "event": ["buy", " buy ", "", "  ", None, 5],
    "name": ["Home", " ", None, 1],
    "properties": [{"total": 1}, {}, None, [1], "x"],
    "traits": [{"plan": "pro"}, {}, None, "x"],
    "context": [{"ip": "1"}, {"traits": {"a": 1}}, {"traits": 1}, None, "x"],
    "timestamp": ["2026-02-10T10:00:00Z", "2026-02-10", "", "soon", None, 17, " 2026-02-10T10:00:00+05:30"],
    "originalTimestamp": [None, "2026-02-10T10:00:00Z", "", "later"],
    "sentAt": [None, "2026-02-10T10:00:02Z", "bad"],
}
ABSENT = object()


def test_fast_path_matches_the_checks_on_many_combinations() -> None:
    import random

    rng = random.Random(8)
    for _ in range(4000):
        # A well-formed message with up to three fields changed to anything, or left out.
        raw = {**T, "type": rng.choice(["track", "identify", "page", "screen"]), "timestamp": "2026-02-10T10:00:00Z"}
        for key in rng.sample(sorted(VALUES), rng.choice([0, 1, 2, 3])):
            value = rng.choice([*VALUES[key], ABSENT])
            if value is ABSENT:
                raw.pop(key, None)
            else:
                raw[key] = value
        kwargs: dict[str, Any] = {"received_ms": NOW, "index": rng.choice([None, 0, 5])}
        kwargs["forced_type"] = rng.choice([None, None, None, "track", "identify"])
        kwargs["sent_at"] = rng.choice([None, "2026-02-10T09:00:00Z"])
        fast, checked = outcome(parse_message, raw, kwargs), outcome(reference, raw, kwargs)
        assert fast == checked, raw
        if isinstance(fast, Message):
            assert [type(v) for v in vars(fast).values()] == [type(v) for v in vars(checked).values()], raw
