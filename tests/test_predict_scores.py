"""Writing predicted scores into profile traits: the object texts and the statements, on a real store."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from tailormail.runtime import Runtime
from tailormail.store import predict_scores
from tailormail.store.schema import profiles

NAN = float("nan")
FRACTIONS = [f"{k / predict_scores.GRID!r}" for k in range(predict_scores.GRID + 1)]  # Python's shortest form

OBJECT_CASES = [  # (scores by name, whole names, expected objects, or None: off the tables)
    ({"p": [0.5, 0.1234]}, set(), [{"p": 0.5}, {"p": 0.1234}]),
    ({"p": [0.0, 1.0]}, set(), [{"p": 0.0}, {"p": 1.0}]),
    ({"p": [0.25, NAN], "p_pct": [7.0, NAN]}, {"p_pct"}, [{"p": 0.25, "p_pct": 7}, {}]),
    ({"a": [NAN, 0.5], "b": [0.3, NAN]}, set(), [{"b": 0.3}, {"a": 0.5}]),  # first present key has no comma
    ({"a": [NAN], "b": [NAN], "c": [0.2]}, set(), [{"c": 0.2}]),
    ({"n": [0.0, 100.0, 10_000.0]}, {"n"}, [{"n": 0}, {"n": 100}, {"n": 10_000}]),
    ({'q"uote': [0.1]}, set(), [{'q"uote': 0.1}]),
    ({"p": [0.12345]}, set(), None),  # more than four decimals
    ({"p": [1.5]}, set(), None),  # above 1
    ({"p": [-0.25]}, set(), None),
    ({"n": [2.5]}, {"n"}, None),  # not whole
    ({"n": [10_001.0]}, {"n"}, None),
    ({"p": [0.5, np.inf]}, set(), None),
    ({}, set(), [{}, {}]),
]


@pytest.mark.parametrize(("scores", "whole", "expected"), OBJECT_CASES)
def test_score_objects(scores: dict[str, list[float]], whole: set[str], expected: list[dict[str, Any]] | None) -> None:
    columns = {name: np.array(values, dtype=float) for name, values in scores.items()}
    rows = len(next(iter(scores.values()))) if scores else 2
    found = predict_scores.score_objects(rows, columns, frozenset(whole), predict_scores.NumberTexts(FRACTIONS))
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert [json.loads(text) for text in found] == expected
    assert [type(v) for text, want in zip(found, expected, strict=True) for v in json.loads(text).values()] == [
        type(v) for want_row in expected for v in want_row.values()
    ]
    assert len({len(text) for text in found}) == 1  # every row the same width: built as one byte matrix


def test_sqlite_prints_the_grid_as_python_reads_it(runtime: Runtime) -> None:
    if runtime.store.engine.dialect.name != "sqlite":
        pytest.skip("the text tables are SQLite's")
    with runtime.store.read() as conn:
        texts = predict_scores.grid_texts(conn)
    assert [float(t) for t in texts] == [k / predict_scores.GRID for k in range(predict_scores.GRID + 1)]
    assert texts[:2] + texts[-1:] == ["0.0", "0.0001", "1.0"]


def _traits_after(runtime: Runtime, scores: dict[str, np.ndarray], whole: frozenset[str]) -> dict[int, str]:
    ids = np.arange(1, len(next(iter(scores.values()))) + 1)
    with runtime.store.begin() as conn:
        conn.execute(
            profiles.insert(),
            [
                {"id": int(i), "user_id": f"u{i}", "traits": {"email": f"u{i}@example.com", "predicted": {"old": 1}}}
                | {"updated_at": 0}
                for i in ids
            ],
        )
        assert predict_scores.write_scores(conn, ids, scores, 5, whole) == len(ids)
        rows = conn.execute(select(profiles.c.id, profiles.c.traits, profiles.c.updated_at)).all()
        conn.execute(profiles.delete())
    assert {r.updated_at for r in rows} == {5}
    return {r.id: json.dumps(r.traits, sort_keys=True) for r in rows}


def test_grid_scores_store_exactly_what_the_general_statement_stores(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 500).round(4)
    p[[0, 7]] = [0.0, 1.0]
    churn = np.where(rng.uniform(0, 1, 500) < 0.4, np.nan, p[::-1])
    scores = {"p": p, "p_percentile": np.floor(p * 100), "churn": churn, "churn_percentile": np.floor(churn * 100)}
    whole = frozenset({"p_percentile", "churn_percentile"})
    fast = _traits_after(runtime, scores, whole)
    monkeypatch.setattr(predict_scores, "score_objects", lambda *_: None)  # force the general statement
    general = _traits_after(runtime, scores, whole)
    assert fast == general
    one = json.loads(fast[1])
    assert one["email"] == "u1@example.com" and "old" not in one["predicted"]
    assert isinstance(one["predicted"]["p_percentile"], int)
    assert sum("churn" in json.loads(t)["predicted"] for t in fast.values()) == int((~np.isnan(churn)).sum())


def test_scores_off_the_grid_are_stored_too(runtime: Runtime) -> None:
    scores = {"p": np.array([0.123456789, np.nan]), "n": np.array([12_345.0, 3.0])}
    stored = _traits_after(runtime, scores, frozenset({"n"}))
    assert [json.loads(stored[i])["predicted"] for i in (1, 2)] == [{"p": 0.123456789, "n": 12_345}, {"n": 3}]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_objects_built_in_chunks_are_the_same(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    rng = np.random.default_rng(5)
    p = np.where(rng.uniform(0, 1, 9) < 0.3, np.nan, rng.uniform(0, 1, 9).round(4))
    scores, whole, numbers = {"p": p, "n": np.floor(p * 100)}, frozenset({"n"}), predict_scores.NumberTexts(FRACTIONS)
    whole_matrix = predict_scores.score_objects(9, scores, whole, numbers)
    monkeypatch.setattr(predict_scores, "CHUNK", chunk)
    assert predict_scores.score_objects(9, scores, whole, numbers) == whole_matrix
