"""Cohorts and paths on a small shop whose answers are known."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tailormail.analytics.cohorts import cohorts
from tailormail.analytics.paths import _collapse, paths_to_goal
from tailormail.clock import to_ms
from tailormail.runtime import Runtime

MONDAY = datetime(2026, 1, 5, 10, tzinfo=UTC)


def events(runtime: Runtime, rows: list[tuple[str, str, datetime]]) -> None:
    runtime.ingestor.ingest_raw(
        [
            {"type": "track", "userId": u, "event": e, "timestamp": t.isoformat(), "messageId": f"{u}-{e}-{i}"}
            for i, (u, e, t) in enumerate(rows)
        ]
    )


def test_weekly_cohorts_share_active_in_later_weeks(runtime: Runtime) -> None:
    w = timedelta(weeks=1)
    events(
        runtime,
        [
            ("a", "product_view", MONDAY),
            ("b", "product_view", MONDAY),
            ("c", "product_view", MONDAY),
            ("d", "product_view", MONDAY + w),
            ("a", "purchase", MONDAY + w),
            ("b", "product_view", MONDAY + 2 * w),
            ("a", "product_view", MONDAY + 2 * w),
            ("d", "product_view", MONDAY + 2 * w),
        ],
    )
    with runtime.store.read() as conn:
        table = cohorts(conn, now_ms=to_ms(MONDAY + 2 * w), max_periods=4)
    assert table.labels == ["2026-01-05", "2026-01-12"] and table.sizes == [3, 1]
    assert table.shares[0][:3] == [1.0, pytest.approx(1 / 3), pytest.approx(2 / 3)]
    assert table.shares[0][3] is None  # week 3 has not happened yet
    assert table.shares[1][:2] == [1.0, 1.0] and table.shares[1][2] is None


def test_first_purchase_cohorts_count_repeat_buyers(runtime: Runtime) -> None:
    w = timedelta(weeks=1)
    events(
        runtime,
        [
            ("a", "purchase", MONDAY),
            ("b", "purchase", MONDAY),
            ("a", "purchase", MONDAY + w),
            ("c", "product_view", MONDAY),
        ],
    )
    with runtime.store.read() as conn:
        table = cohorts(conn, now_ms=to_ms(MONDAY + w), start="first_purchase", activity="purchase", max_periods=2)
    assert table.sizes == [2] and table.shares[0] == [1.0, 0.5]


def test_signup_cohorts_can_measure_purchasing(runtime: Runtime) -> None:
    events(runtime, [("a", "product_view", MONDAY), ("b", "product_view", MONDAY), ("a", "purchase", MONDAY)])
    with runtime.store.read() as conn:
        table = cohorts(conn, now_ms=to_ms(MONDAY), activity="purchase", max_periods=1)
    assert table.sizes == [2] and table.shares == [[0.5]]


def test_paths_before_conversion_with_rates(runtime: Runtime) -> None:
    t = MONDAY
    rows = []
    for i in range(6):  # view, cart, purchase: four of six convert
        u = f"buyer{i}"
        rows += [
            (u, "product_view", t),
            (u, "product_view", t + timedelta(minutes=1)),
            (u, "add_to_cart", t + timedelta(minutes=2)),
        ]
        if i < 4:
            rows.append((u, "purchase", t + timedelta(minutes=3)))
    rows += [("browser", "product_view", t)]
    events(runtime, rows)
    with runtime.store.read() as conn:
        stats = paths_to_goal(conn, ["product_view", "add_to_cart"], "purchase", steps=3)
    top = stats[0]
    assert top.steps == ("product_view", "add_to_cart") and top.people == 6 and top.converted == 4
    assert top.conversion_rate == pytest.approx(4 / 6)
    assert stats[1].steps == ("product_view",) and stats[1].converted == 0


@pytest.mark.parametrize(
    ("names", "expected"),
    [([], ()), (["a", "a", "b", "a"], ("a", "b", "a")), (["x"], ("x",))],
)
def test_collapse(names: list[str], expected: tuple[str, ...]) -> None:
    assert _collapse(names) == expected


def _reference_paths(rows: list[tuple[str, str, int, int]], names: list[str], goal: str, steps: int) -> Counter:
    """The rule, straight from the events: last 4 * steps events before the first goal, runs collapsed."""
    first_goal = {}
    for user, event, ts, _ in rows:
        if event == goal:
            first_goal[user] = min(ts, first_goal.get(user, ts))
    by_person: dict[str, list[tuple[int, int, str]]] = {}
    for user, event, ts, i in rows:
        if event in names and (user not in first_goal or ts < first_goal[user]):
            by_person.setdefault(user, []).append((ts, i, event))
    out: Counter = Counter()
    for user, items in by_person.items():
        window = sorted(items)[-4 * steps :]
        out[(_collapse([e for _, _, e in window])[-steps:], user in first_goal)] += 1
    return out


def test_paths_match_the_rule_on_varied_histories(runtime: Runtime) -> None:
    rng = random.Random(11)
    names = ["product_view", "add_to_cart", "checkout_started"]
    rows = []
    for u in range(60):  # long runs (past the window), ties in time, goals early, late and never
        for _ in range(rng.randint(1, 25)):
            event = rng.choice([*names, "product_view", "product_view", "purchase", "other"])
            rows.append((f"u{u}", event, rng.randint(0, 40), len(rows)))
    events(runtime, [(u, e, MONDAY + timedelta(minutes=ts)) for u, e, ts, _ in rows])
    with runtime.store.read() as conn:
        stats = paths_to_goal(conn, names, "purchase", steps=3, top=1000)
    got: Counter = Counter()
    for s in stats:
        got[(s.steps, True)] += s.converted
        got[(s.steps, False)] += s.people - s.converted
    assert +got == _reference_paths(rows, names, "purchase", 3)
    assert [s.people for s in stats] == sorted((s.people for s in stats), reverse=True)


@pytest.mark.parametrize(
    ("start", "activity"),
    [("first_seen", None), ("first_seen", "purchase"), ("first_purchase", "purchase"), ("first_purchase", None),
     ("first_purchase", "product_view")],
)  # fmt: skip
def test_cohorts_match_the_rule_on_varied_histories(runtime: Runtime, start: str, activity: str | None) -> None:
    rng = random.Random(5)
    rows = [
        (f"u{u}", rng.choice(["product_view", "purchase"]), MONDAY + timedelta(hours=rng.randint(0, 24 * 40)))
        for u in range(50)
        for _ in range(rng.randint(1, 8))
    ]
    events(runtime, rows)
    now = MONDAY + timedelta(days=42)
    with runtime.store.read() as conn:
        table = cohorts(conn, now_ms=to_ms(now), start=start, activity=activity, max_periods=6)
    week, midnight = timedelta(weeks=1), MONDAY.replace(hour=0)  # weeks start on Monday at midnight
    first: dict[str, datetime] = {}
    for u, e, t in rows:
        if start == "first_seen" or e == "purchase":
            first[u] = min(t, first.get(u, t))
    weeks = {u: (t - midnight) // week for u, t in first.items()}
    active: dict[tuple[int, int], set[str]] = {}
    for u, e, t in rows:
        if u in first and t >= first[u] and (activity is None or e == activity):
            active.setdefault((weeks[u], (t - midnight) // week - weeks[u]), set()).add(u)
    current = 6  # now is in week 6: cohorts of the last six weeks are shown
    cohort_ids = sorted(c for c in set(weeks.values()) if c > current - 6)
    assert table.sizes == [sum(1 for w in weeks.values() if w == c) for c in cohort_ids]
    for row, c in zip(table.shares, cohort_ids, strict=True):
        size = sum(1 for w in weeks.values() if w == c)
        expected = [len(active.get((c, k), ())) / size if c + k <= current else None for k in range(6)]
        assert row == pytest.approx(expected)
