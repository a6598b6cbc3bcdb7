"""Column mapping and format detection: pure code, table-driven."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailormail.errors import ValidationError
from tailormail.ingest.files import detect_format
from tailormail.ingest.importer import RowIds
from tailormail.ingest.mapping import ColumnMapping, RowError, parse_maps

CDNOW = {"customer_id": "userId", "date": "timestamp", "dollar_value": "properties.revenue"}

MESSAGE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "cdnow row: ids stay text, money becomes a number, date parsed, event given",
        {"maps": CDNOW, "date_format": "%Y%m%d", "event": "purchase", "text_values": True},
        {"customer_id": "00002", "date": "19970112", "number_of_cds": "5", "dollar_value": "77.00"},
        {
            "type": "track",
            "event": "purchase",
            "userId": "00002",
            "timestamp": "1997-01-12T00:00:00+00:00",
            "properties": {"revenue": 77.0, "number_of_cds": 5},
        },
    ),
    (
        "well-known column names map on their own; an event column beats --event",
        {"event": "default_name", "text_values": True},
        {"user_id": "u1", "Event": "signup", "Timestamp": "2026-03-01T10:00:00Z", "plan": "pro"},
        {
            "type": "track",
            "event": "signup",
            "userId": "u1",
            "timestamp": "2026-03-01T10:00:00Z",
            "properties": {"plan": "pro"},
        },
    ),
    (
        "nested targets, skipped columns, empty values dropped",
        {"maps": {"city": "context.location.city", "note": "-"}, "text_values": True},
        {"userId": "u1", "event": "x", "city": "Lyon", "note": "secret", "coupon": ""},
        {"type": "track", "event": "x", "userId": "u1", "context": {"location": {"city": "Lyon"}}},
    ),
    (
        "JSON values keep their types; a properties column is an object",
        {},
        {"userId": 7, "event": "x", "properties": '{"a": [1, 2]}', "price": "12.5"},
        {"type": "track", "event": "x", "userId": "7", "properties": {"a": [1, 2], "price": "12.5"}},
    ),
    (
        "epoch seconds and milliseconds are times",
        {},
        {"userId": "u", "event": "x", "timestamp": 1_700_000_000_000},
        {"type": "track", "event": "x", "userId": "u", "timestamp": "2023-11-14T22:13:20+00:00"},
    ),
    (
        "exported identify: its properties are its traits; receivedAt is dropped",
        {},
        {"type": "identify", "userId": "u", "properties": {"plan": "pro"}, "receivedAt": "2026-01-01T00:00:00Z"},
        {"type": "identify", "userId": "u", "traits": {"plan": "pro"}},
    ),
    (
        "Segment's delivery metadata is dropped; originalTimestamp is kept as a time",
        {},
        {
            "userId": "u",
            "event": "x",
            "sentAt": "2026-01-01T00:00:01Z",
            "integrations": {"All": True},
            "originalTimestamp": "2026-01-01T00:00:00Z",
            "version": 2,
        },
        {"type": "track", "event": "x", "userId": "u", "originalTimestamp": "2026-01-01T00:00:00Z"},
    ),
    (
        "a name column on a track event is a property; on a page it is the page name",
        {},
        {"type": "page", "anonymousId": "a", "name": "Home"},
        {"type": "page", "anonymousId": "a", "name": "Home"},
    ),
    (
        "track with a name column",
        {"text_values": True},
        {"userId": "u", "event": "x", "name": "Red shoes"},
        {"type": "track", "userId": "u", "event": "x", "properties": {"name": "Red shoes"}},
    ),
]


@pytest.mark.parametrize(
    ("description", "options", "row", "expected"), MESSAGE_CASES, ids=[c[0] for c in MESSAGE_CASES]
)
def test_rows_become_messages(description: str, options: dict[str, Any], row: dict[str, Any], expected: dict) -> None:
    assert ColumnMapping("events", **options).message(row) == expected


def test_profiles_get_identify_and_extra_columns_become_traits() -> None:
    mapping = ColumnMapping("profiles", {"mail": "traits.email"}, text_values=True)
    assert mapping.message({"external_id": "u1", "mail": "a@x.io", "age": "41"}) == {
        "type": "identify",
        "userId": "u1",
        "traits": {"email": "a@x.io", "age": 41},
    }


ROW_ERRORS = [
    ("events", {"date_format": "%Y%m%d"}, {"userId": "u", "timestamp": "1997-13-01"}, "timestamp", "does not match"),
    ("events", {}, {"userId": "u", "properties": "{oops"}, "properties", "not a JSON object"),
    ("products", {}, {"name": "no id"}, "product_id", "missing"),
    ("products", {"text_values": True}, {"sku": "a", "price": "cheap"}, "price", "not a number"),
]


@pytest.mark.parametrize(("kind", "options", "row", "field", "words"), ROW_ERRORS)
def test_bad_rows_name_the_field(kind: str, options: dict, row: dict, field: str, words: str) -> None:
    mapping = ColumnMapping(kind, **options)
    with pytest.raises(RowError) as caught:
        mapping.product(row) if kind == "products" else mapping.message(row)
    assert caught.value.field == field and words in caught.value.reason


def test_products_map_catalog_columns_and_keep_the_rest_as_properties() -> None:
    row = {"sku": "p1", "title": "Red shoes", "price": "49.90", "image": "https://x/i.png", "color": "red"}
    assert ColumnMapping("products", text_values=True).product(row) == {
        "product_id": "p1",
        "name": "Red shoes",
        "price": 49.9,
        "image_url": "https://x/i.png",
        "properties": {"color": "red"},
    }


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [(["a=userId", " b = properties.x "], {"a": "userId", "b": "properties.x"}), ([], {})],
)
def test_parse_maps(pairs: list[str], expected: dict[str, str]) -> None:
    assert parse_maps(pairs) == expected


@pytest.mark.parametrize("pairs", [["nofield"], ["=userId"], ["a="]])
def test_parse_maps_refuses_malformed_pairs(pairs: list[str]) -> None:
    with pytest.raises(ValidationError, match="column=field"):
        parse_maps(pairs)


def test_unknown_map_target_is_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError) as caught:
        ColumnMapping("events", {"x": "revenue"})
    assert "unknown field 'revenue'" in caught.value.message and "properties.NAME" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("a.csv", None, "csv"),
        ("a.TSV", None, "csv"),
        ("a.jsonl", None, "jsonl"),
        ("a.ndjson", None, "jsonl"),
        ("a.parquet", None, "parquet"),
        ("cdnow.txt", None, "whitespace"),
        ("data.bin", "csv", "csv"),
    ],
)
def test_detect_format(name: str, given: str | None, expected: str) -> None:
    assert detect_format(Path(name), given) == expected


@pytest.mark.parametrize(("name", "given"), [("data.bin", None), ("a.csv", "xlsx")])
def test_unknown_format_asks_for_format(name: str, given: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        detect_format(Path(name), given)
    assert caught.value.field == "format"


def test_row_ids_are_stable_and_count_identical_rows() -> None:
    row = {"userId": "u", "event": "purchase", "properties": {"revenue": 12.0}}
    first, second = RowIds("events"), RowIds("events")
    ids = [first(dict(row)), first(dict(row)), first({**row, "userId": "v"})]
    assert len(set(ids)) == 3
    assert [second(dict(row)), second(dict(row))] == ids[:2]
    assert RowIds("profiles")(dict(row)) != ids[0]
