"""Metrics by segment: membership at send time, read back from the recorded history."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tailormail.analytics.membership import NO_SEGMENT, Membership
from tailormail.analytics.metrics import compute
from tailormail.clock import ManualClock, to_ms
from tailormail.runtime import Runtime
from tailormail.store import profiles as profile_q
from tailormail.store.segments import apply_changes
from test_metrics import USERS, send_campaign

T = 1_000_000
MEMBERSHIP_CASES = [
    # (changes per segment, current since per segment, send time, expected, why)
    ({}, {}, T, [NO_SEGMENT], "no history, no membership"),
    ({"vip": [(T - 10, True)]}, {"vip": T - 10}, T, ["vip"], "entered before the send"),
    ({"vip": [(T + 10, True)]}, {"vip": T + 10}, T, [NO_SEGMENT], "entered after the send"),
    ({"vip": [(T - 20, True), (T - 10, False)]}, {}, T, [NO_SEGMENT], "left before the send"),
    ({"vip": [(T + 10, False)]}, {}, T, ["vip"], "only a later exit: was in before history began"),
    ({}, {"vip": T - 5, "new": T + 5}, T, ["vip"], "no history: current membership, if it began before"),
    ({"a": [(T - 1, True)], "b": [(T - 1, True)]}, {"a": T - 1, "b": T - 1}, T, ["a", "b"], "in two segments"),
]


@pytest.mark.parametrize(
    ("changes", "since", "at", "expected", "why"), MEMBERSHIP_CASES, ids=[c[4] for c in MEMBERSHIP_CASES]
)
def test_segments_at_send_time(
    changes: dict[str, list[tuple[int, bool]]], since: dict[str, int], at: int, expected: list[str], why: str
) -> None:
    member = Membership(since=since)
    member.changes.update(changes)
    assert member.segments_at(at) == expected, why


def test_metrics_by_segment_use_membership_when_sent(runtime: Runtime, clock: ManualClock) -> None:
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": u, "traits": {}} for u in USERS])
    with runtime.store.begin() as conn:
        ids = {u: profile_q.get_profile(conn, user_id=u)["id"] for u in USERS}  # type: ignore[index]
        apply_changes(conn, "vip", {ids["a"], ids["b"]}, set(), to_ms(clock.now()), "refresh")
    clock.advance(timedelta(minutes=5))
    send_campaign(runtime, clock, "spring", dict.fromkeys(USERS, "A"))
    clock.advance(timedelta(minutes=5))
    with runtime.store.begin() as conn:  # b leaves and c joins after the send: the send-time view holds
        apply_changes(conn, "vip", {ids["c"]}, {ids["b"]}, to_ms(clock.now()), "refresh")
    with runtime.store.read() as conn:
        groups = {
            m.group["segment"]: m.sent for m in compute(conn, ["segment"], goal_event="purchase", attribution_days=5)
        }
    assert groups == {"vip": 2, NO_SEGMENT: 2}
