"""compact_json: the JSON text rows are written with (orjson, the standard library where orjson refuses)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tailormail.store.dialect import compact_json


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
