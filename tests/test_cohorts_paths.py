"""Cohorts and paths on a small shop whose answers are known."""

from __future__ import annotations

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
