"""Real time: the ingest hook, history and events, scheduled rechecks, the worker, RFM."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from tailormail.clock import ManualClock, to_ms
from tailormail.runtime import Runtime
from tailormail.segments import membership
from tailormail.segments.realtime import Catalog, apply_due_rechecks, sync_definitions
from tailormail.store import profiles as profile_q
from tailormail.store import segments as q
from tailormail.store.schema import events
from tailormail.throttle import Throttle
from tailormail.worker import make_worker

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def send(rt: Runtime, clock: ManualClock, user: str, event: str, **props: Any) -> None:
    mid = f"{user}-{event}-{to_ms(clock.now())}-{sorted(props.items())}"
    rt.ingestor.ingest_raw(
        [
            {
                "type": "track",
                "userId": user,
                "event": event,
                "messageId": mid,
                "timestamp": clock.now().isoformat(),
                "properties": props,
            }
        ]
    )


def members(rt: Runtime, name: str) -> set[str]:
    with rt.store.read() as conn:
        ids = membership.members(conn, name)
        users = profile_q.profile_ids_by_user(conn, ["u1", "u2", "u3"])
    return {u for u, p in users.items() if p in ids}


def test_cart_abandonment_enters_after_24h_and_a_purchase_removes_at_once(runtime: Runtime, clock: ManualClock) -> None:
    catalog = Catalog(runtime.settings)
    sync_definitions(runtime.store, catalog, to_ms(clock.now()))
    send(runtime, clock, "u1", "add_to_cart")
    send(runtime, clock, "u2", "add_to_cart")
    assert members(runtime, "cart_abandoners") == set()
    clock.advance(24 * HOUR - timedelta(seconds=1))
    assert apply_due_rechecks(runtime.store, catalog, to_ms(clock.now())) == 0
    clock.advance(timedelta(seconds=1))
    worker = make_worker(runtime)
    worker.run_once()
    assert members(runtime, "cart_abandoners") == {"u1", "u2"}
    send(runtime, clock, "u2", "purchase", revenue=20)
    assert members(runtime, "cart_abandoners") == {"u1"}
    assert members(runtime, "active_buyers") == {"u2"}
    clock.advance(6 * DAY)  # the cart is now 7 days old: u1 leaves
    worker.run_once()
    assert members(runtime, "cart_abandoners") == set()
    assert members(runtime, "active_buyers") == {"u2"}
    clock.advance(DAY)  # u2's purchase is now 7 days old
    worker.run_once()
    assert members(runtime, "active_buyers") == set()
    with runtime.store.read() as conn:
        u1 = profile_q.profile_ids_by_user(conn, ["u1"])["u1"]
        changes = [(c["segment"], c["change"], c["source"]) for c in q.history(conn, profile_id=u1)]
        emitted = conn.execute(
            select(events.c.event, events.c.properties, events.c.ts).where(
                events.c.profile_id == u1, events.c.event.like("segment_%")
            )
        ).all()
    assert changes == [("cart_abandoners", "entered", "recheck"), ("cart_abandoners", "exited", "recheck")]
    assert [(e, p["segment"]) for e, p, _ in emitted] == [
        ("segment_entered", "cart_abandoners"),
        ("segment_exited", "cart_abandoners"),
    ]
    assert emitted[1][2] == to_ms(clock.now() - DAY)


def test_only_refreshed_definitions_run_in_real_time_and_edits_resync(runtime: Runtime, clock: ManualClock) -> None:
    catalog = Catalog(runtime.settings)
    send(runtime, clock, "u1", "purchase", revenue=5)
    assert members(runtime, "active_buyers") == set()  # not refreshed yet: no partial baseline
    diffs = {d.segment: d for d in sync_definitions(runtime.store, catalog, to_ms(clock.now()))}
    assert len(diffs["active_buyers"].entered) == 1
    (runtime.settings.workspace / "segments" / "big_spenders.yaml").write_text(
        "rule:\n  event: purchase\n  aggregate: {sum: revenue, gte: 100}\n"
    )
    assert [d.segment for d in sync_definitions(runtime.store, catalog, to_ms(clock.now()))] == ["big_spenders"]
    send(runtime, clock, "u1", "purchase", revenue=95)
    assert members(runtime, "big_spenders") == {"u1"}
    (runtime.settings.workspace / "segments" / "big_spenders.yaml").unlink()
    sync_definitions(runtime.store, catalog, to_ms(clock.now()))
    with runtime.store.read() as conn:
        assert "big_spenders" not in q.states(conn)


def test_rfm_scores_are_traits_usable_in_rules(runtime: Runtime, clock: ManualClock) -> None:
    for i, user in enumerate(["u1", "u2", "u3"]):
        for n in range(i + 1):
            send(runtime, clock, user, "purchase", revenue=10 * (i + 1), n=n)
        clock.advance(DAY)
    (runtime.settings.workspace / "segments" / "champions.yaml").write_text("rule:\n  trait: rfm.score\n  gte: 13\n")
    sync_definitions(runtime.store, Catalog(runtime.settings), to_ms(clock.now()))
    with runtime.store.read() as conn:
        traits = profile_q.traits_of(conn, profile_q.profile_ids_by_user(conn, ["u3"]).values())
    (rfm,) = [t["rfm"] for t in traits.values()]
    assert (rfm["r"], rfm["f"], rfm["m"], rfm["frequency"]) == (5, 5, 5, 3)
    assert rfm["code"] == "555" and rfm["score"] == 15
    with runtime.store.read() as conn:
        u2 = profile_q.traits_of(conn, profile_q.profile_ids_by_user(conn, ["u2"]).values())
    assert [t["rfm"]["code"] for t in u2.values()] == ["444"]  # ceil(5 * 2/3)
    assert members(runtime, "champions") == {"u3"}


def test_identity_merge_and_erasure_carry_memberships(runtime: Runtime, clock: ManualClock) -> None:
    sync_definitions(runtime.store, Catalog(runtime.settings), to_ms(clock.now()))
    runtime.ingestor.ingest_raw(
        [
            {"type": "track", "anonymousId": "a1", "event": "purchase", "messageId": "m1"},
            {"type": "track", "userId": "u1", "event": "purchase", "messageId": "m2"},
        ]
    )
    assert members(runtime, "active_buyers") == {"u1"}
    with runtime.store.read() as conn:
        assert len(membership.members(conn, "active_buyers")) == 2  # the anonymous buyer too
    # the anonymous profile (a member) merges into u1 (a member): one membership remains
    runtime.ingestor.ingest_raw([{"type": "alias", "previousId": "a1", "userId": "u1", "messageId": "m3"}])
    with runtime.store.read() as conn:
        u1 = profile_q.profile_ids_by_user(conn, ["u1"])["u1"]
        assert membership.members(conn, "active_buyers") == {u1}
        assert membership.memberships_of(conn, u1) == ["active_buyers"]
        assert q.sizes(conn)["active_buyers"] == 1
    with runtime.store.begin() as conn:
        profile_q.erase_profile(conn, u1)
    with runtime.store.read() as conn:
        assert membership.members(conn, "active_buyers") == set()
        assert q.history(conn, profile_id=u1) == []


def recheck_rows(rt: Runtime, segment: str, user: str) -> list[int]:
    with rt.store.read() as conn:
        pid = profile_q.profile_ids_by_user(conn, [user])[user]
        return sorted(q.rechecks_of(conn, segment, [pid]).get(pid, set()))


def test_events_stamped_now_write_no_recheck_rows_the_worker_scan_finds_their_moments(
    runtime: Runtime, clock: ManualClock
) -> None:
    catalog = Catalog(runtime.settings)
    sync_definitions(runtime.store, catalog, to_ms(clock.now()))
    send(runtime, clock, "u1", "add_to_cart")
    assert recheck_rows(runtime, "cart_abandoners", "u1") == []
    clock.advance(DAY)  # the cart's 24-hour moment passes: found by a range of the (event, ts) index
    assert apply_due_rechecks(runtime.store, catalog, to_ms(clock.now())) >= 1
    assert members(runtime, "cart_abandoners") == {"u1"}
    assert apply_due_rechecks(runtime.store, catalog, to_ms(clock.now())) == 0  # scanned up to now: not twice


def test_a_late_event_whose_moment_is_a_minute_away_gets_a_row(runtime: Runtime, clock: ManualClock) -> None:
    """The scan reads committed events: a moment this close could pass while the event's transaction is open."""
    catalog = Catalog(runtime.settings)
    sync_definitions(runtime.store, catalog, to_ms(clock.now()))
    late = clock.now() - DAY + timedelta(seconds=30)
    runtime.ingestor.ingest_raw(
        [{"type": "track", "userId": "u1", "event": "add_to_cart", "messageId": "late", "timestamp": late.isoformat()}]
    )
    assert recheck_rows(runtime, "cart_abandoners", "u1") == [to_ms(late + DAY)]
    clock.advance(timedelta(seconds=30))
    apply_due_rechecks(runtime.store, catalog, to_ms(clock.now()))
    assert members(runtime, "cart_abandoners") == {"u1"}
    assert recheck_rows(runtime, "cart_abandoners", "u1") == []


def test_a_future_stamped_event_gets_a_row_at_its_time(runtime: Runtime, clock: ManualClock) -> None:
    catalog = Catalog(runtime.settings)
    sync_definitions(runtime.store, catalog, to_ms(clock.now()))
    ahead = clock.now() + 2 * HOUR
    runtime.ingestor.ingest_raw(
        [{"type": "track", "userId": "u1", "event": "purchase", "messageId": "ahead", "timestamp": ahead.isoformat()}]
    )
    assert members(runtime, "active_buyers") == set()  # events after now never count
    assert recheck_rows(runtime, "active_buyers", "u1") == [to_ms(ahead)]
    clock.advance(2 * HOUR)
    apply_due_rechecks(runtime.store, catalog, to_ms(clock.now()))
    assert members(runtime, "active_buyers") == {"u1"}


def test_a_worker_that_was_down_catches_up_in_steps(runtime: Runtime, clock: ManualClock) -> None:
    catalog = Catalog(runtime.settings)
    sync_definitions(runtime.store, catalog, to_ms(clock.now()))
    send(runtime, clock, "u1", "add_to_cart")
    clock.advance(3 * DAY)  # entered after a day, left after seven: still in at three
    apply_due_rechecks(runtime.store, catalog, to_ms(clock.now()))
    assert members(runtime, "cart_abandoners") == {"u1"}
    with runtime.store.read() as conn:
        marks = {row["scanned_until"] for row in q.states(conn).values()}
    assert marks == {to_ms(clock.now())}


def test_the_hook_catalog_sees_an_edit_within_its_interval_and_a_refreshed_rule_at_once(
    runtime: Runtime, clock: ManualClock
) -> None:
    """A throttled catalog compares the folder once per interval, and at once when the state names a rule it lacks."""
    seconds = [0.0]
    catalog = Catalog(runtime.settings, Throttle(1.0, clock=lambda: seconds[0]))
    with runtime.store.read() as conn:
        state = q.states(conn)
    assert "big_spenders" not in catalog.segments(state)
    path = runtime.settings.workspace / "segments" / "big_spenders.yaml"
    path.write_text("rule:\n  event: purchase\n  aggregate: {sum: revenue, gte: 100}\n")
    assert "big_spenders" not in catalog.segments(state)  # within the interval, nothing refreshed: not compared
    seconds[0] += 1.0
    assert "big_spenders" in catalog.segments(state)  # an interval later: compared, loaded
    path.write_text("rule:\n  event: purchase\n  aggregate: {sum: revenue, gte: 200}\n")
    seconds[0] += 0.5
    old = catalog.segments(state)["big_spenders"]
    sync_definitions(runtime.store, Catalog(runtime.settings), to_ms(clock.now()))  # the worker refreshes the edit
    with runtime.store.read() as conn:
        state = q.states(conn)
    assert catalog.segments(state)["big_spenders"] != old  # its refreshed rule: compared at once
    send(runtime, clock, "u1", "purchase", revenue=150)
    assert members(runtime, "big_spenders") == set()  # the hook uses the refreshed rule (sum >= 200)
    send(runtime, clock, "u1", "purchase", revenue=60)
    assert members(runtime, "big_spenders") == {"u1"}


def test_change_event_ids_are_unique_and_sort_by_time() -> None:
    # Time-ordered ids land on the message-id index's last pages (a random id cost each batch a page per change).
    earlier = [q.change_message_id(1_764_000_000_000) for _ in range(500)]
    later = [q.change_message_id(1_764_000_000_001) for _ in range(500)]
    assert len(set(earlier + later)) == 1000
    assert max(earlier) < min(later)
    assert all(mid.startswith("segment-") and len(mid) == len(earlier[0]) for mid in earlier + later)


def test_profile_clocks_read_the_narrow_index_and_seen_table_not_the_profile_rows(runtime: Runtime) -> None:
    with runtime.store.begin() as conn:
        a, b = profile_q.create_profiles(conn, ["a", "b"], 5)
        profile_q.touch_seen(conn, {a: (1, 2), b: (3, 4)}, created={a, b})
        assert q.profile_clocks(conn, [a, b]) == {a: (5, 1, 2), b: (5, 3, 4)}
        sqlite = conn.dialect.name == "sqlite"  # the plan is SQLite's; PostgreSQL plans its own statement
        explain = "EXPLAIN QUERY PLAN " + q._SQLITE_CLOCKS
        plan = [r[3] for r in conn.exec_driver_sql(explain, ("[1]",))] if sqlite else []
    assert not sqlite or "SEARCH p USING COVERING INDEX ix_profiles_clock (id=?)" in plan
