"""Record mapping: selectors compiled once, records to Segment messages with provenance and stable ids."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from tailormail.errors import ConfigError, ValidationError
from tailormail.ingest.pull import Selector, accessor
from tailormail.sync.mapping import RecordMapper, message_id
from tailormail.sync.sources import Mapping

DOC = {"id": 7, "a": {"b": {"c": 3}, "list": [1, 2]}, "name": "Ann", "zero": 0, "none": None, "text": "x"}


@pytest.mark.parametrize(
    ("expression", "data", "value"),
    [
        ("id", DOC, 7),
        ("zero", DOC, 0),
        ("none", DOC, None),
        ("missing", DOC, None),
        ("a.b", DOC, {"c": 3}),
        ("a.b.c", DOC, 3),
        ("a.missing.c", DOC, None),
        ("text.x", DOC, None),  # a step into a non-object
        ("a.b.c.d", DOC, None),
        ("id", ["not", "an", "object"], None),
        ("a.b", None, None),
        ("a.b.c", "text", None),
        ("a.list[1]", DOC, 2),  # JMESPath beyond dotted paths
        ("a.list[-1]", DOC, 2),
        ("[*].id", [{"id": 1}, {"id": 2}], [1, 2]),
        ('"a"', DOC, DOC["a"]),
    ],
)
def test_accessors_and_selectors_read_the_same_values(expression: str, data: Any, value: Any) -> None:
    assert accessor(expression)(data) == value
    assert Selector(expression)(data) == value


def test_a_bad_selector_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"selector 'a\[' is not valid JMESPath"):
        accessor("a[")


IDENTIFY = Mapping(key="id", user_id="id", updated="updated_at", traits={"email": "email", "city": "address.city"})
TRACK = Mapping(type="track", event="order", key="order_id", user_id="customer.id", timestamp="placed", properties={})
AT = datetime(2026, 2, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mapping", "record", "expected"),
    [
        (
            IDENTIFY,
            {"id": 5, "email": "a@x.io", "address": {"city": "Oslo"}, "updated_at": "2026-02-01T10:00:00Z"},
            {
                "type": "identify",
                "userId": "5",
                "messageId": message_id("crm", "5", "2026-02-01T10:00:00Z"),
                "context": {"source": {"name": "crm", "key": "5"}},
                "timestamp": "2026-02-01T10:00:00Z",
                "traits": {"email": "a@x.io", "city": "Oslo"},
            },
        ),
        (  # missing values are left out; no updated: no timestamp
            IDENTIFY,
            {"id": "c1", "email": None},
            {
                "type": "identify",
                "userId": "c1",
                "messageId": message_id("crm", "c1", None),
                "context": {"source": {"name": "crm", "key": "c1"}},
                "traits": {},
            },
        ),
        (  # updated as a datetime: text for the watermark and the id, ISO for the timestamp
            IDENTIFY,
            {"id": "c1", "email": "e", "updated_at": AT},
            {
                "type": "identify",
                "userId": "c1",
                "messageId": message_id("crm", "c1", AT.isoformat()),
                "context": {"source": {"name": "crm", "key": "c1"}},
                "timestamp": AT.isoformat(),
                "traits": {"email": "e"},
            },
        ),
        (  # no property selectors: every top-level field, made JSON-safe; epoch milliseconds become ISO time
            TRACK,
            {
                "order_id": "o1",
                "customer": {"id": 9},
                "placed": 1_770_000_000_000,
                "total": Decimal("9.5"),
                "day": date(2026, 2, 1),
                "gone": None,
            },
            {
                "type": "track",
                "userId": "9",
                "messageId": message_id("crm", "o1", None),
                "context": {"source": {"name": "crm", "key": "o1"}},
                "timestamp": datetime.fromtimestamp(1_770_000_000, UTC).isoformat(),
                "event": "order",
                "properties": {
                    "order_id": "o1",
                    "customer": {"id": 9},
                    "placed": 1_770_000_000_000,
                    "total": "9.5",
                    "day": "2026-02-01",
                },
            },
        ),
    ],
)
def test_records_become_messages(mapping: Mapping, record: dict[str, Any], expected: dict[str, Any]) -> None:
    mapper = RecordMapper("crm", mapping)
    assert mapper.message(record) == expected
    assert mapper.message(record, mapper.updated_value(record)) == expected


@pytest.mark.parametrize(
    ("mapping", "record", "error", "field"),
    [
        (IDENTIFY, ["x"], "record must be an object, got list", "record"),
        (IDENTIFY, {"email": "e"}, "record has no 'id' (its key)", "id"),
        (IDENTIFY, {"id": ""}, "record has no 'id' (its key)", "id"),
        (TRACK, {"order_id": "o1"}, "record has no usable 'customer.id' (the userId)", "customer.id"),
        (TRACK, {"order_id": "o1", "customer": {"id": True}}, "record has no usable 'customer.id'", "customer.id"),
        (TRACK, {"order_id": "o1", "customer": {"id": {"x": 1}}}, "record has no usable 'customer.id'", "customer.id"),
        (TRACK, {"order_id": "o1", "customer": {"id": 1}, "placed": [1]}, "placed must be a time", "placed"),
    ],
)
def test_unusable_records_are_named(mapping: Mapping, record: Any, error: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RecordMapper("crm", mapping).message(record)
    assert caught.value.message.startswith(error) and caught.value.field == field


def test_a_key_of_zero_is_a_key() -> None:
    message = RecordMapper("crm", IDENTIFY).message({"id": 0})
    assert message["userId"] == "0" and message["context"]["source"]["key"] == "0"
