"""The rule language on a real database: each condition kind, table-driven, plus validation errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import T0
from tailormail.clock import ManualClock, to_ms
from tailormail.errors import ValidationError
from tailormail.runtime import Runtime
from tailormail.segments.definitions import event_settings, load_segments, parse_segment
from tailormail.segments.evaluate import matching_profiles
from tailormail.segments.yamlsource import from_json, load_yaml
from tailormail.store import profiles as profile_q

DAY = timedelta(days=1)


def at(delta: timedelta) -> str:
    return (T0 + delta).isoformat()


def track(user: str, event: str, ago: timedelta, n: int = 0, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": event,
        "messageId": f"{user}-{event}-{ago.total_seconds()}-{n}",
        "timestamp": at(-ago),
        "properties": props,
    }


def identify(user: str, days_ago: int = 40, **traits: Any) -> dict[str, Any]:
    when = at(-days_ago * DAY)
    return {"type": "identify", "userId": user, "messageId": f"id-{user}", "traits": traits, "timestamp": when}


SHOP = [
    identify(
        "ada",
        email="ada@x.io",
        plan="pro",
        age=36,
        tags=["vip", "shoes"],
        birthday="1990-03-05",
        consent={"email": True},
        signup="2026-02-20T00:00:00Z",
        predicted={"purchase_30d": 0.8},
    ),
    identify("bob", 10, email="", plan="free", age="unknown", tags=[], birthday="1985-12-24", consent={"email": False}),
    identify("cy", plan="Pro trial", age=17),
    track("ada", "purchase", 2 * DAY, revenue=120.0, category="shoes"),
    track("ada", "purchase", 40 * DAY, revenue=500.0, category="bags"),
    track("ada", "product_view", 1 * DAY),
    track("bob", "add_to_cart", 3 * DAY),
    track("bob", "product_view", 1 * DAY, 1),
    track("bob", "product_view", 2 * DAY, 2),
    track("bob", "product_view", 3 * DAY, 3),
    track("cy", "add_to_cart", 3 * DAY),
    track("cy", "purchase", 2 * DAY, revenue=30.0, category="shoes"),
    track("cy", "purchase", 100 * DAY, revenue=10.0),
    track("dee", "purchase", 120 * DAY, revenue=80.0),
    track("dee", "add_to_cart", 10 * DAY),
    track("eve", "add_to_cart", 2 * timedelta(hours=1)),
]

CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("trait equals text", {"trait": "plan", "equals": "pro"}, {"ada"}),
    ("trait not equals keeps the missing", {"trait": "plan", "not_equals": "pro"}, {"bob", "cy", "dee", "eve"}),
    ("trait in", {"trait": "plan", "in": ["pro", "free"]}, {"ada", "bob"}),
    ("trait contains text", {"trait": "plan", "contains": "trial"}, {"cy"}),
    ("trait contains list element", {"trait": "tags", "contains": "vip"}, {"ada"}),
    ("trait starts with", {"trait": "plan", "starts_with": "Pro"}, {"cy"}),
    ("trait gt ignores non-numbers", {"trait": "age", "gt": 18}, {"ada"}),
    ("trait between", {"trait": "age", "between": [10, 20]}, {"cy"}),
    ("trait exists", {"trait": "email", "exists": True}, {"ada", "bob"}),
    ("trait is empty", {"trait": "email", "is_empty": True}, {"bob", "cy", "dee", "eve"}),
    ("dotted bool", {"trait": "consent.email", "equals": True}, {"ada"}),
    ("dotted number", {"trait": "predicted.purchase_30d", "gte": 0.5}, {"ada"}),
    ("date within last days", {"trait": "signup", "within_last_days": 30}, {"ada"}),
    ("birthday in next 7 days", {"trait": "birthday", "birthday_within_days": 7}, {"ada"}),
    ("performed in window", {"event": "purchase", "window": {"last": "7 days"}}, {"ada", "cy"}),
    (
        "performed with property filter",
        {"event": "purchase", "where": {"category": "shoes", "revenue": {"gt": 50}}},
        {"ada"},
    ),
    ("at least 3 times", {"event": "product_view", "at_least": 3}, {"bob"}),
    ("at most 1 time includes never", {"event": "purchase", "at_most": 1}, {"bob", "dee", "eve"}),
    ("exactly 2", {"event": "purchase", "exactly": 2}, {"ada", "cy"}),
    ("not performed", {"event": "purchase", "performed": False}, {"bob", "eve"}),
    (
        "between two dates",
        {"event": "purchase", "window": {"after": at(-50 * DAY)[:10], "before": at(-30 * DAY)[:10]}},
        {"ada"},
    ),
    ("first performed before", {"event": "purchase", "first": {"before": "90 days ago"}}, {"cy", "dee"}),
    ("last performed after", {"event": "purchase", "last": {"after": "30 days ago"}}, {"ada", "cy"}),
    (
        "sum over window",
        {"event": "purchase", "window": {"last": "90 days"}, "aggregate": {"sum": "revenue", "gt": 500}},
        {"ada"},
    ),
    (
        "sum below includes never",
        {"event": "purchase", "aggregate": {"sum": "revenue", "lt": 50}},
        {"bob", "cy", "eve"},
    ),
    ("max over all time", {"event": "purchase", "aggregate": {"max": "revenue", "gte": 80}}, {"ada", "dee"}),
    (
        "sequence: cart not followed by purchase",
        {"event": "add_to_cart", "not_followed_by": {"event": "purchase"}},
        {"bob", "dee", "eve"},
    ),
    (
        "sequence within a day (decided once a day passed)",
        {"event": "add_to_cart", "not_followed_by": {"event": "purchase", "within": "1 day"}},
        {"bob", "dee"},
    ),
    (
        "all / any / not",
        {
            "all": [
                {"any": [{"trait": "plan", "equals": "free"}, {"event": "purchase"}]},
                {"not": {"trait": "age", "lt": 18}},
            ]
        },
        {"ada", "bob", "dee"},
    ),
    ("profile first seen", {"profile": "first_seen", "within_last_days": 30}, {"eve", "bob"}),
]


@pytest.fixture
def shop(runtime: Runtime, clock: ManualClock) -> dict[str, int]:
    runtime.ingestor.ingest_raw(SHOP)
    with runtime.store.read() as conn:
        return profile_q.profile_ids_by_user(conn, ["ada", "bob", "cy", "dee", "eve"])


def rule_of(runtime: Runtime, rule: dict[str, Any]) -> Any:
    doc = from_json({"rule": rule}, "test")
    return parse_segment(doc, "t", event_settings(runtime.settings)).rule


def test_every_condition_kind(runtime: Runtime, shop: dict[str, int]) -> None:
    by_id = {v: k for k, v in shop.items()}
    failures = []
    with runtime.store.read() as conn:
        for description, rule, expected in CASES:
            found = matching_profiles(conn, rule_of(runtime, rule), now_ms=to_ms(T0), settings=runtime.settings)
            got = {by_id[p] for p in found}
            if got != expected:
                failures.append(f"{description}: expected {sorted(expected)}, got {sorted(got)}")
            restricted = matching_profiles(
                conn, rule_of(runtime, rule), now_ms=to_ms(T0), profile_ids=[shop["ada"], shop["bob"]]
            )
            if restricted != found & {shop["ada"], shop["bob"]}:
                failures.append(f"{description}: restricted evaluation differs")
    assert not failures, "\n".join(failures)


def test_presets_mean_what_the_issue_says(runtime: Runtime, shop: dict[str, int]) -> None:
    segments = load_segments(runtime.settings)
    by_id = {v: k for k, v in shop.items()}
    expected = {
        "cart_abandoners": {"bob"},  # cy bought after; dee's cart is 10 days old; eve's only 2 hours
        "active_buyers": {"ada", "cy"},
        "engaged_browsers": {"bob"},
        "new_subscribers": {"bob"},
        "lapsed_customers": {"dee"},
        "high_value": set(),  # predictive presets: nobody has been scored
        "at_risk": set(),
    }
    with runtime.store.read() as conn:
        got = {n: {by_id[p] for p in matching_profiles(conn, s.rule, now_ms=to_ms(T0))} for n, s in segments.items()}
    assert got == expected
    # eve's cart turns 24 hours old tomorrow: she becomes an abandoner then.
    later = to_ms(T0 + DAY)
    with runtime.store.read() as conn:
        assert shop["eve"] in matching_profiles(conn, segments["cart_abandoners"].rule, now_ms=later)


ERRORS = [
    ("unknown kind with suggestion", "rule:\n  evnt: purchase\n", 2, "rule.evnt", "'event'"),
    ("unknown operator", "rule:\n  trait: plan\n  equal: pro\n", 3, "rule.equal", "'equals'"),
    ("bad duration", "rule:\n  event: purchase\n  window:\n    last: seven days\n", 4, "rule.window.last", None),
    ("unknown event setting", "rule:\n  event: $purchse\n", 2, "rule.event", "'$purchase'"),
    (
        "nested list item",
        "rule:\n  all:\n    - trait: a\n      exists: true\n    - event: x\n      at_leest: 2\n",
        6,
        "rule.all[1].at_leest",
        "'at_least'",
    ),
    ("bad yaml", "rule: [\n", 2, None, None),
]


@pytest.mark.parametrize(("description", "text", "line", "field", "suggestion"), ERRORS, ids=[e[0] for e in ERRORS])
def test_validation_errors_name_file_line_field_and_suggest(
    runtime: Runtime, description: str, text: str, line: int, field: str | None, suggestion: str | None
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_segment(load_yaml(text, "segments/x.yaml"), "x", event_settings(runtime.settings))
    error = caught.value
    assert (error.source, error.line, error.field) == ("segments/x.yaml", line, field)
    if suggestion:
        assert suggestion in (error.hint or "")


def test_references_inline_and_cycles_are_refused(runtime: Runtime, workspace: Path) -> None:
    folder = workspace / "segments"
    (folder / "a.yaml").write_text("rule:\n  segment: b\n")
    (folder / "b.yaml").write_text("rule:\n  not:\n    segment: a\n")
    with pytest.raises(ValidationError, match="cycle: a -> b -> a"):
        load_segments(runtime.settings)
    (folder / "b.yaml").write_text("rule:\n  segment: active_buyers\n")
    segments = load_segments(runtime.settings)
    assert segments["a"].references == {"b", "active_buyers"}
    (folder / "b.yaml").write_text("rule:\n  segment: active_buyer\n")
    with pytest.raises(ValidationError, match="unknown segment 'active_buyer'") as caught:
        load_segments(runtime.settings)
    assert "active_buyers" in (caught.value.hint or "")
