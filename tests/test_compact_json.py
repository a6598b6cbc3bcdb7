"""JSON in and out of SQLite rows: compact_json writes (orjson, else the standard library), read_json reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tailormail.store.dialect import compact_json
from tailormail.store.engine import read_json


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({}, "{}"),
        ({"a": 1, "b": [1.5, None, True]}, '{"a":1,"b":[1.5,null,true]}'),
        ({"name": "José"}, '{"name":"José"}'),  # UTF-8, not \u escapes: both read back the same
        ({"n": 2**70}, '{"n":1180591620717411303424}'),  # beyond 64 bits: the standard library writes it
        ({1: "x"}, '{"1":"x"}'),  # a non-string key: the standard library makes it a string
        ([], "[]"),
        (None, "null"),
    ],
)
def test_compact_json_writes_what_json_reads_back(value: Any, text: str) -> None:
    assert compact_json(value) == text
    assert json.loads(compact_json(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"b":[1.5,null,true],"c":"José"}',
        '{"n":1180591620717411303424}',  # beyond 64 bits: orjson would read a float
        '{"x":NaN}',  # older rows written by json.dumps may hold NaN: orjson refuses it
        "[1.5e300,-0.0]",
    ],
)
def test_read_json_reads_what_the_standard_library_reads(text: str) -> None:
    got, expected = read_json(text), json.loads(text)
    assert repr(got) == repr(expected)  # repr: the same types (int stays int) and NaN compares
