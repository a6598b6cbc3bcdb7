"""Batch and real time agree: random event streams, random times, presets and generated rules.

Events arrive one per call and in batches of several people's events (late
ones and slightly future ones too), so the set-based real-time path (one
query per affected segment per batch, skipping events outside every window)
is checked against the compiled batch query.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tailormail.clock import ManualClock, to_ms
from tailormail.runtime import Runtime
from tailormail.segments import membership
from tailormail.segments.definitions import load_segments
from tailormail.segments.evaluate import matching_profiles
from tailormail.segments.realtime import Catalog, apply_due_rechecks, sync_definitions
from tailormail.store import profiles as profile_q

EVENTS = ["product_view", "add_to_cart", "purchase"]
USERS = 4
_run = itertools.count()
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
"""No shrinking: each example builds database state, and shrinking it can take minutes."""

durations = st.sampled_from(["2 hours", "24 hours", "3 days", "7 days", "30 days"])
event_leaf = st.fixed_dictionaries(
    {"event": st.sampled_from(EVENTS), "window": st.fixed_dictionaries({"last": durations})},
    optional={
        "at_least": st.integers(1, 3),
        "performed": st.booleans(),
        "not_followed_by": st.fixed_dictionaries(
            {"event": st.sampled_from(EVENTS)}, optional={"within": st.sampled_from(["1 hour", "2 days"])}
        ),
    },
)
aggregate_leaf = st.fixed_dictionaries(
    {
        "event": st.just("purchase"),
        "window": st.fixed_dictionaries({"last": durations}),
        "aggregate": st.fixed_dictionaries({"sum": st.just("revenue"), "gt": st.sampled_from([0, 40, 100])}),
    }
)
between_leaf = st.fixed_dictionaries(
    {
        "event": st.sampled_from(EVENTS),
        "window": st.sampled_from([{"from": "7 days", "to": "24 hours"}, {"from": "3 days", "to": "2 hours"}]),
    },
    optional={"not_followed_by": st.fixed_dictionaries({"event": st.sampled_from(EVENTS)})},
)
profile_leaf = st.fixed_dictionaries(
    {"profile": st.sampled_from(["first_seen", "last_seen"])},
    optional={"within_last_days": st.integers(1, 3)},
).map(lambda node: node if len(node) == 2 else {**node, "more_than_days_ago": 1})
last_leaf = st.fixed_dictionaries(
    {
        "event": st.sampled_from(EVENTS),
        "last": st.fixed_dictionaries({"before": st.sampled_from(["1 day ago", "8 days ago"])}),
    }
)
trait_leaf = st.fixed_dictionaries({"trait": st.just("plan"), "equals": st.sampled_from(["pro", "free"])})
leaf = st.one_of(event_leaf, between_leaf, aggregate_leaf, last_leaf, trait_leaf, profile_leaf)
rules = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.fixed_dictionaries({"all": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"any": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"not": inner}),
    ),
    max_leaves=4,
)
tracked = st.tuples(st.integers(0, USERS - 1), st.sampled_from(EVENTS), st.integers(-2, 48), st.integers(1, 80))
"""(user, event, hours before now it happened: -2 is two hours ahead, money)"""
step = st.one_of(
    st.tuples(
        st.just("track"), st.integers(0, USERS - 1), st.sampled_from(EVENTS), st.integers(0, 48), st.integers(1, 80)
    ),
    st.tuples(st.just("batch"), st.just(0), st.lists(tracked, min_size=2, max_size=6), st.just(0), st.just(0)),
    st.tuples(st.just("identify"), st.integers(0, USERS - 1), st.sampled_from(["pro", "free"]), st.just(0), st.just(0)),
    st.tuples(st.just("wait"), st.just(0), st.just(""), st.integers(1, 24 * 12), st.just(0)),
)


def apply(rt: Runtime, clock: ManualClock, run: int, kind: str, user: int, what: Any, hours: int, money: int) -> None:
    uid = f"r{run}-u{user}"
    mid = f"r{run}-{to_ms(clock.now())}-{kind}-{user}-{what}-{hours}-{money}"
    if kind == "batch":  # several people's events in one call: one transaction, one hook call
        rt.ingestor.ingest_raw([track(clock, run, i, *event) for i, event in enumerate(what)])
    elif kind == "wait":
        clock.advance(timedelta(hours=hours))
    elif kind == "identify":
        rt.ingestor.ingest_raw([{"type": "identify", "userId": uid, "messageId": mid, "traits": {"plan": what}}])
    else:  # late events too: stamped up to two days before they arrive
        when = clock.now() - timedelta(hours=hours)
        rt.ingestor.ingest_raw(
            [
                {
                    "type": "track",
                    "userId": uid,
                    "event": what,
                    "messageId": mid,
                    "timestamp": when.isoformat(),
                    "properties": {"revenue": money},
                }
            ]
        )


def track(clock: ManualClock, run: int, index: int, user: int, event: str, hours: int, money: int) -> dict[str, Any]:
    when = clock.now() - timedelta(hours=hours)
    return {
        "type": "track",
        "userId": f"r{run}-u{user}",
        "event": event,
        "messageId": f"r{run}-{to_ms(clock.now())}-b{index}-{user}-{event}-{hours}-{money}",
        "timestamp": when.isoformat(),
        "properties": {"revenue": money},
    }


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=PHASES)
@given(rule=rules, steps=st.lists(step, min_size=3, max_size=25), checks=st.sets(st.integers(0, 24), max_size=4))
def test_batch_equals_real_time(
    runtime: Runtime, clock: ManualClock, rule: Any, steps: list[Any], checks: set[int]
) -> None:
    run = next(_run)
    clock.advance(timedelta(days=400))  # a fresh stretch of time: earlier runs' windows are long closed
    (runtime.settings.workspace / "segments" / "generated.yaml").write_text(yaml.safe_dump({"rule": rule}))
    catalog = Catalog(runtime.settings)
    sync_definitions(runtime.store, catalog, to_ms(clock.now()))
    segments = load_segments(runtime.settings)
    for index, (kind, user, what, hours, money) in enumerate(steps):
        apply(runtime, clock, run, kind, user, what, hours, money)
        apply_due_rechecks(runtime.store, catalog, to_ms(clock.now()))  # the worker, running all along
        if index in checks or index == len(steps) - 1:
            assert_agree(runtime, run, segments, to_ms(clock.now()))


def assert_agree(rt: Runtime, run: int, segments: dict[str, Any], now_ms: int) -> None:
    with rt.store.read() as conn:
        ours = set(profile_q.profile_ids_by_user(conn, [f"r{run}-u{i}" for i in range(USERS)]).values())
        for name, segment in segments.items():
            batch = matching_profiles(conn, segment.rule, now_ms=now_ms) & ours
            real_time = membership.members(conn, name) & ours
            assert batch == real_time, f"{name} at {now_ms}: batch {sorted(batch)} != real time {sorted(real_time)}"
