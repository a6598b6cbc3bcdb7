"""Predictive models on a small simulated shop: features, time-split training, promotion, scoring."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from tailormail.clock import from_ms, to_ms
from tailormail.errors import NotFound, ValidationError
from tailormail.ingest.bulk import bulk_ingest
from tailormail.ingest.messages import parse_message
from tailormail.predict import evaluate, features, service, tasks
from tailormail.runtime import Runtime
from tailormail.store import predict as predict_q
from tailormail.store import profiles as profile_q
from tailormail.store.schema_predict import predict_models
from tailormail.worker import Worker, make_worker

DAY = 86_400_000
CATEGORIES = ["shoes", "shirts", "bags", "hats", "socks"]


def shop_messages(now_ms: int, users: int = 300, days: int = 300, seed: int = 7) -> list[dict[str, Any]]:
    """A deterministic shop: each customer has a lasting buying rate and a lifetime, so the past predicts."""
    rng = np.random.default_rng(seed)
    start = now_ms - days * DAY
    out: list[dict[str, Any]] = []
    for u in range(users):
        rate = rng.gamma(1.5, 0.02)  # purchases per day while active
        first = rng.uniform(0, 150)
        last = min(days, first + rng.exponential(150))
        kinds = {
            "product_view": 6 * rate + 0.02,
            "add_to_cart": 2 * rate,
            "purchase": rate,
            "email_opened": 0.02 + 2 * rate,
        }
        for kind, per_day in kinds.items():
            n = rng.poisson(per_day * (last - first))
            for j, day in enumerate(np.sort(rng.uniform(first, last, n))):
                props: dict[str, Any] = {"category": CATEGORIES[int(rng.integers(0, 2 + u % 4))]}
                if kind == "purchase":
                    props["revenue"] = round(float(rng.lognormal(3.5 + 0.3 * (u % 3), 0.4)), 2)
                ts = from_ms(int(start + day * DAY)).isoformat()
                out.append(
                    {
                        "type": "track",
                        "messageId": f"{u}-{kind}-{j}",
                        "userId": f"u{u}",
                        "event": kind,
                        "properties": props,
                        "timestamp": ts,
                    }
                )
    return out


def ingest(runtime: Runtime, raws: list[dict[str, Any]]) -> None:
    now_ms = to_ms(runtime.clock.now())
    bulk_ingest(runtime.store, (parse_message(r, received_ms=now_ms) for r in raws), now_ms=now_ms)


@pytest.fixture
def shop(runtime: Runtime) -> Runtime:
    ingest(runtime, shop_messages(to_ms(runtime.clock.now()), users=200))
    return runtime


def ev(mid: str, user: str, event: str, days_ago: float, now_ms: int, **props: Any) -> dict[str, Any]:
    ts = from_ms(int(now_ms - days_ago * DAY)).isoformat()
    return {"type": "track", "messageId": mid, "userId": user, "event": event, "properties": props, "timestamp": ts}


FEATURE_CASES = [  # (feature, expected for user a, expected for user b)
    ("frequency", 2, 0),
    ("monetary", 30.0, 0.0),
    ("aov", 15.0, 0.0),
    ("recency_days", 5, 40),  # b never bought: recency falls back to tenure
    ("tenure_days", 120, 40),
    ("views_7d", 1, 0),
    ("views_30d", 2, 0),
    ("views_90d", 2, 1),
    ("purchases_7d", 1, 0),
    ("purchases_90d", 1, 0),
    ("carts_30d", 1, 0),
    ("days_since_view", 3, 40),
    ("days_since_cart", 20, 40),
    ("emails_opened_90d", 1, 0),
    ("emails_clicked_90d", 1, 0),
    ("category_breadth_90d", 2, 1),  # the shoes bought 100 days ago are outside the window
]


def test_features_count_only_events_before_the_cutoff(runtime: Runtime) -> None:
    now = to_ms(runtime.clock.now())
    ingest(
        runtime,
        [
            ev("a1", "a", "purchase", 100, now, revenue=10.0, category="shoes"),
            ev("a2", "a", "purchase", 5, now, revenue=20.0, category="bags"),
            ev("a3", "a", "product_view", 3, now, category="hats"),
            ev("a4", "a", "product_view", 10, now, category="hats"),
            ev("a5", "a", "add_to_cart", 20, now, category="hats"),
            ev("a6", "a", "email_opened", 2, now),
            ev("a7", "a", "email_clicked", 2, now),
            ev("a8", "a", "email_opened", 120, now),  # outside the 90-day email window
            ev("a9", "a", "purchase", -1, now, revenue=99.0),  # after the cut-off: ignored
            ev("b1", "b", "product_view", 40, now, category="shoes"),
        ],
    )
    with runtime.store.read() as conn:
        matrix = features.compute(conn, now, runtime.settings.events)
        a, b = (profile_q.get_profile(conn, user_id=u)["id"] for u in "ab")  # type: ignore[index]
    rows = {int(pid): i for i, pid in enumerate(matrix.profile_ids)}
    for name, want_a, want_b in FEATURE_CASES:
        got = matrix.column(name)
        assert (got[rows[a]], got[rows[b]]) == pytest.approx((want_a, want_b)), name


@pytest.mark.parametrize("readers", [1, 2, 3])
def test_parallel_reads_give_the_features_of_one_connection(
    shop: Runtime, monkeypatch: pytest.MonkeyPatch, readers: int
) -> None:
    now = to_ms(shop.clock.now())
    # Categories given as JSON objects and numbers are counted by their text, in every id range.
    ingest(shop, [ev(f"j{i}", f"u{i}", "product_view", 1, now, category={"k": i % 2}) for i in range(9)])
    ingest(shop, [ev(f"n{i}", f"u{i}", "add_to_cart", 1, now, category=i % 3) for i in range(9)])
    with shop.store.read() as conn:
        one = features.compute(conn, now, shop.settings.events)
    monkeypatch.setattr(features, "READERS", readers)
    many = features.compute(shop.store, now, shop.settings.events)
    assert np.array_equal(one.profile_ids, many.profile_ids)
    assert np.array_equal(one.values, many.values)  # exactly: same sums in the same order


CODE_CASES = [  # (categories, codes, distinct values)
    ([], [], []),
    (["a", None, "b", "a"], [0, -1, 1, 0], ["a", "b"]),
    ([None, None], [-1, -1], []),
    ([{"x": 1}, "a", {"x": 1}, [1]], [0, 1, 0, 2], ['{"x": 1}', "a", "[1]"]),
]


@pytest.mark.parametrize(("values", "codes", "distinct"), CODE_CASES)
def test_categories_are_numbered_by_first_appearance(values: list[Any], codes: list[int], distinct: list[Any]) -> None:
    got, names = features._codes(values)
    assert got.tolist() == codes and names == distinct


def test_part_codes_are_renumbered_across_parts() -> None:
    a = (np.array([0, -1, 1]), ["x", "y"])
    b = (np.array([1, 0, -1]), ["z", "x"])
    assert features._renumbered([a, b]).tolist() == [0, -1, 1, 0, 2, -1]
    assert features._renumbered([]).tolist() == []


def test_event_id_ranges_cover_every_event(shop: Runtime) -> None:
    with shop.store.read() as conn:
        low, high = (int(v) for v in conn.exec_driver_sql("select min(id), max(id) from events").one())
        ranges = predict_q.event_id_ranges(conn, 3)
    if shop.store.dialect != "sqlite":
        assert ranges == [None]  # one scan of the heap on PostgreSQL
        return
    assert len(ranges) == 3 and ranges[0] is not None and ranges[-1] is not None
    assert ranges[0][0] == low and ranges[-1][1] == high + 1
    assert all(a[1] == b[0] for a, b in pairwise(ranges))  # type: ignore[index]


def test_event_id_ranges_of_an_empty_store(runtime: Runtime) -> None:
    with runtime.store.read() as conn:
        assert predict_q.event_id_ranges(conn, 2) == [None]


def test_train_all_three_models_stores_versions_with_a_full_report(shop: Runtime) -> None:
    results = service.train(shop.store, shop.settings, shop.clock.now())
    assert [r.model for r in results] == ["purchase_30d", "churn_90d", "high_value_90d"]
    for r in results:
        assert (r.version, r.status) == (1, "promoted")
        assert r.roc_auc > 0.65, r
    report = service.latest_reports(shop.store, "purchase_30d")[0]
    m = report["metrics"]
    assert report["train_cutoff"] + 30 * DAY == report["eval_cutoff"] == to_ms(shop.clock.now()) - 30 * DAY
    assert 0 < m["brier"] < 0.25 and 0 < m["pr_auc"] <= 1
    assert [c["decile"] for c in m["calibration"]] == list(range(1, 11))
    assert m["lift"][0]["lift"] > 1.5 and m["lift"][-1]["cumulative_capture"] == pytest.approx(1.0)
    # Prior-corrected probabilities are calibrated on average.
    mean_predicted = np.mean([c["predicted"] for c in m["calibration"]])
    assert mean_predicted == pytest.approx(m["positive_rate"], abs=0.1)
    words = {c["feature"]: c["sentence"] for c in report["coefficients"]}
    assert "no effect" in words["emails_clicked_90d"]  # the shop sends no clicks: constant, said plainly
    assert set(words) == set(features.FEATURES)
    assert words["purchases_90d"].startswith("each extra purchase in the last 90 days ")
    assert " the odds of buying in the next 30 days by " in words["purchases_90d"] and "%" in words["purchases_90d"]


def test_score_writes_predicted_traits_and_keeps_the_others(shop: Runtime) -> None:
    shop.ingestor.ingest_raw([{"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}}])
    with pytest.raises(NotFound, match="no trained model"):
        service.score(shop.store, shop.settings, shop.clock.now())
    service.train(shop.store, shop.settings, shop.clock.now())
    counts = service.score(shop.store, shop.settings, shop.clock.now())
    with shop.store.read() as conn:
        active = len(features.compute(conn, to_ms(shop.clock.now()), shop.settings.events).profile_ids)
    assert counts["purchase_30d"] == counts["high_value_90d"] == active > 150  # everyone with history
    assert 0 < counts["churn_90d"] < active  # only past buyers get a churn score
    with shop.store.read() as conn:
        traits = profile_q.traits_of(conn, [profile_q.profile_ids_by_user(conn, ["u1"])["u1"]])
    (one,) = traits.values()
    assert one["email"] == "u1@example.com"
    predicted = one["predicted"]
    assert 0 <= predicted["purchase_30d"] <= 1 and 0 <= predicted["purchase_30d_percentile"] <= 100
    assert isinstance(predicted["purchase_30d_percentile"], int)
    with shop.store.read() as conn:
        ids = features.compute(conn, to_ms(shop.clock.now()), shop.settings.events).profile_ids
        everyone = [t["predicted"] for t in profile_q.traits_of(conn, [int(p) for p in ids]).values()]
    # Profiles outside a model's population get no key at all (not a null).
    assert sum("churn_90d" in p for p in everyone) == counts["churn_90d"]
    assert all(None not in p.values() for p in everyone)


def plant_better_auc(rt: Runtime, model: str, margin: float) -> float:
    """Pretend the promoted version had been ``margin`` better; return that AUC."""
    with rt.store.begin() as conn:
        row = predict_q.latest_version(conn, model)
        assert row is not None
        better = {**row["metrics"], "roc_auc": row["metrics"]["roc_auc"] + margin}
        conn.execute(update(predict_models).where(predict_models.c.id == row["id"]).values(metrics=better))
    return float(better["roc_auc"])


def test_worker_retrains_weekly_and_refuses_a_model_whose_auc_fell(shop: Runtime) -> None:
    (task,) = [t for t in make_worker(shop).tasks if t.name == "predict.retrain"]
    assert task.every == timedelta(days=7)
    worker = Worker(shop, [task])
    assert worker.run_once() == {"predict.retrain": 3}
    planted = plant_better_auc(shop, "purchase_30d", 0.05)
    shop.clock.advance(timedelta(days=3))  # type: ignore[attr-defined]
    assert worker.run_once() == {}  # not due yet
    shop.clock.advance(timedelta(days=4))  # type: ignore[attr-defined]
    assert worker.run_once()["predict.retrain"] <= 2
    with shop.store.read() as conn:
        purchase = predict_q.model_versions(conn, "purchase_30d")
        churn = predict_q.model_versions(conn, "churn_90d")
        in_use = predict_q.latest_version(conn, "purchase_30d")
    assert [(v["version"], v["status"]) for v in purchase] == [(2, "rejected"), (1, "promoted")]
    assert f"below {planted:.3f}" in purchase[0]["reason"] and "fell more than 0.02" in purchase[0]["reason"]
    assert in_use is not None and in_use["version"] == 1  # scoring keeps the good version
    assert [v["version"] for v in churn] == [2, 1]
    assert purchase[0]["trained_at"] == to_ms(shop.clock.now())


def test_a_drop_within_the_allowance_is_promoted(shop: Runtime) -> None:
    (first,) = service.train(shop.store, shop.settings, shop.clock.now(), "purchase_30d")
    planted = plant_better_auc(shop, "purchase_30d", 0.015)
    (second,) = service.train(shop.store, shop.settings, shop.clock.now(), "purchase_30d")
    assert second.roc_auc == pytest.approx(first.roc_auc)  # same data, same model
    assert (second.version, second.status, second.previous_auc) == (2, "promoted", pytest.approx(planted))


def test_worker_task_skips_models_without_history(runtime: Runtime) -> None:
    assert tasks.retrain(runtime, runtime.clock.now()) == 0


def test_too_little_history_is_a_clear_error(runtime: Runtime) -> None:
    now = to_ms(runtime.clock.now())
    ingest(runtime, [ev("x", "a", "product_view", 200, now)])
    with pytest.raises(ValidationError, match="cannot train purchase_30d") as caught:
        service.train(runtime.store, runtime.settings, runtime.clock.now(), "purchase_30d")
    assert caught.value.hint and "[predict]" in caught.value.hint


def test_unknown_model_and_config_keys_are_named(runtime: Runtime, workspace: Path) -> None:
    with pytest.raises(NotFound, match="known models: purchase_30d"):
        service.train(runtime.store, runtime.settings, runtime.clock.now(), "nope")
    from dataclasses import replace

    bad = replace(runtime.settings, raw={"predict": {"purchase_dayz": 14}})
    with pytest.raises(Exception, match=r"\[predict\].purchase_dayz"):
        service.PredictSettings.from_settings(bad)


def test_presets_select_high_value_and_at_risk_from_the_scores(shop: Runtime, workspace: Path) -> None:
    from tailormail.segments.definitions import load_segments
    from tailormail.segments.evaluate import matching_profiles

    segments = load_segments(shop.settings)
    now_ms = to_ms(shop.clock.now())
    with shop.store.read() as conn:
        assert matching_profiles(conn, segments["at_risk"].rule, now_ms=now_ms) == set()  # nothing scored yet
    service.train(shop.store, shop.settings, shop.clock.now())
    service.score(shop.store, shop.settings, shop.clock.now())
    with shop.store.read() as conn:
        high = matching_profiles(conn, segments["high_value"].rule, now_ms=now_ms)
        risk = matching_profiles(conn, segments["at_risk"].rule, now_ms=now_ms)
        traits = profile_q.traits_of(
            conn, [int(p) for p in features.compute(conn, now_ms, shop.settings.events).profile_ids]
        )
    scored = [t["predicted"] for t in traits.values()]
    assert len(high) == sum(p["high_value_90d_percentile"] >= 90 for p in scored) > 0
    assert len(high) == pytest.approx(0.1 * len(scored), abs=3)
    assert risk == {pid for pid, t in traits.items() if t["predicted"].get("churn_90d", 0) > 0.7} != set()


SENTENCES = [  # (feature, odds per unit, odds per std, std, expected start)
    ("purchases_90d", 1.34, 1.8, 2.0, "each extra purchase in the last 90 days raises the odds of X by 34.0 %"),
    ("recency_days", 0.97, 0.2, 60.0, "each extra day since the last purchase lowers the odds of X by 3.0 %"),
    ("emails_clicked_90d", 1.0, 1.0, 0.0, "email clicked in the last 90 days: the same for everyone"),
]


@pytest.mark.parametrize(("name", "per_unit", "per_std", "std", "expected"), SENTENCES)
def test_coefficient_sentences(name: str, per_unit: float, per_std: float, std: float, expected: str) -> None:
    assert evaluate.sentence(name, per_unit, per_std, std, "of X").startswith(expected)


def test_calibration_and_lift_by_decile_on_known_scores() -> None:
    y = np.array([1] * 10 + [0] * 90)
    p = np.linspace(1, 0, 100)  # the ten positives have the ten highest scores
    cal, lift = evaluate.calibration(y, p), evaluate.lift(y, p)
    assert [c["observed"] for c in cal] == [1.0] + [0.0] * 9
    assert lift[0]["lift"] == pytest.approx(10.0) and lift[0]["cumulative_capture"] == 1.0
    assert evaluate.metrics(y, p)["roc_auc"] == 1.0


PACKED_CASES = [  # (packed text from the database, expected values)
    (None, []),
    ("", []),
    ("7", [7]),
    ("3,1,2", [3, 1, 2]),
    (b"", []),  # SQLite hands the text over as bytes
    (b"7", [7]),
    (b"3,1,2", [3, 1, 2]),
]


@pytest.mark.parametrize(("text", "expected"), PACKED_CASES)
def test_packed_columns_are_read_back_exactly(text: str | bytes | None, expected: list[int]) -> None:
    assert predict_q._unpack(text).tolist() == expected


@pytest.mark.parametrize("text", ["1,x,3", b"1,x,3", b"1,,3"])
def test_a_malformed_packed_column_is_an_error_not_a_short_array(text: str | bytes) -> None:
    with pytest.raises(ValueError, match="read"):  # numpy says so itself; our count check backs it up
        predict_q._unpack(text)
