"""Metrics and last-touch attribution over real sends and real tracking hits."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from outbox_helpers import send_plain
from tailormail.analytics.metrics import compute
from tailormail.api.app import create_app
from tailormail.clock import ManualClock
from tailormail.runtime import Runtime
from tailormail.track import links
from test_track import BASE, BROWSER, Slot

USERS = ["a", "b", "c", "d"]


def send_campaign(
    runtime: Runtime, clock: ManualClock, campaign: str, variant_of: dict[str, str]
) -> dict[str, tuple[str, int]]:
    """Send one email per user through the real outbox; return user -> (key, profile id)."""
    fields = {u: {"key": f"{campaign}/{u}", "campaign": campaign, "variant": v} for u, v in variant_of.items()}
    return send_plain(runtime, clock, fields)


def test_rates_and_last_touch_attribution(runtime: Runtime, clock: ManualClock) -> None:
    runtime.ingestor.ingest_raw(
        [{"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com"}} for u in USERS]
    )
    keys = send_campaign(runtime, clock, "spring", {"a": "A", "b": "A", "c": "B", "d": "B"})
    secret = runtime.settings.secret
    clock.advance(timedelta(minutes=30))
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        for user in ("a", "b", "c"):
            key, pid = keys[user]
            client.get(links.open_url(BASE, secret, key, pid).removeprefix(BASE), headers={"User-Agent": BROWSER})
        key, pid = keys["a"]
        client.get(
            links.click_url(BASE, secret, key, pid, Slot(1, "hero", 0), "https://s.example/x").removeprefix(BASE),
            headers={"User-Agent": BROWSER},
        )
        key, pid = keys["d"]  # a scanner "opens" d's email: not a person
        client.get(links.open_url(BASE, secret, key, pid).removeprefix(BASE), headers={"User-Agent": "Mozilla/5.0"})
    clock.advance(timedelta(days=2))
    when = clock.now().isoformat()
    runtime.ingestor.ingest_raw(
        [
            {"type": "track", "userId": "a", "event": "purchase", "timestamp": when, "properties": {"revenue": 80.0}},
            {"type": "track", "userId": "c", "event": "purchase", "timestamp": when, "properties": {"revenue": 20.0}},
        ]
    )
    clock.advance(timedelta(days=10))
    runtime.ingestor.ingest_raw(
        [
            {
                "type": "track",
                "userId": "b",
                "event": "purchase",
                "timestamp": clock.now().isoformat(),
                "properties": {"revenue": 999.0},
            }
        ]
    )
    with runtime.store.read() as conn:
        by_variant = {
            m.group["variant"]: m for m in compute(conn, ["variant"], goal_event="purchase", attribution_days=5)
        }
        with_bots = {
            m.group["variant"]: m
            for m in compute(conn, ["variant"], goal_event="purchase", attribution_days=5, include_automated=True)
        }
    a, b = by_variant["A"], by_variant["B"]
    assert (a.sent, a.delivered, a.opened, a.clicked) == (2, 2, 2, 1)
    assert (b.sent, b.opened, b.clicked) == (2, 1, 0)
    assert (a.conversions, a.revenue) == (1, 80.0)  # b's purchase came 12 days later: outside the window
    assert (b.conversions, b.revenue) == (1, 20.0)  # c converted after an open, no click
    assert a.open_rate == 1.0 and a.click_to_open_rate == 0.5 and a.revenue_per_recipient == 40.0
    assert with_bots["B"].opened == 2


@pytest.mark.parametrize("by", [["campaign"], ["day"], ["campaign", "variant"]])
def test_groupings_cover_every_send(runtime: Runtime, clock: ManualClock, by: list[str]) -> None:
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": u, "traits": {}} for u in USERS])
    send_campaign(runtime, clock, "one", dict.fromkeys(USERS, "A"))
    with runtime.store.read() as conn:
        groups = compute(conn, by, goal_event="purchase", attribution_days=5)
    assert sum(m.sent for m in groups) == 4
    assert all(set(m.group) == set(by) for m in groups)


def test_attribution_window_edges(runtime: Runtime, clock: ManualClock) -> None:
    """Goals at the touch and exactly at the window's end count; before the touch or a millisecond late do not."""
    runtime.ingestor.ingest_raw(
        [{"type": "identify", "userId": u, "traits": {"email": f"{u}@x.example"}} for u in "ab"]
    )
    keys = send_campaign(runtime, clock, "edge", {"a": "A", "b": "B"})
    opened = clock.now() + timedelta(hours=1)
    window = timedelta(days=5)

    def track(user: str, event: str, at: datetime, props: dict[str, object]) -> dict[str, object]:
        return {"type": "track", "userId": user, "event": event, "timestamp": at.isoformat(), "properties": props}

    runtime.ingestor.ingest_raw(
        [
            track("a", "purchase", opened - timedelta(milliseconds=1), {"revenue": 1.0}),  # before the open
            track("a", "email_opened", opened, {"message_key": keys["a"][0]}),
            track("a", "purchase", opened, {"revenue": 10.0}),
            track("a", "purchase", opened + window, {"revenue": 100.0}),
            track("a", "purchase", opened + window + timedelta(milliseconds=1), {"revenue": 1000.0}),
            track("b", "email_opened", opened, {"message_key": keys["b"][0]}),
            track("b", "purchase", opened + window + timedelta(milliseconds=1), {"revenue": 5.0}),
        ]
    )
    with runtime.store.read() as conn:
        rows = {m.group["variant"]: m for m in compute(conn, ["variant"], goal_event="purchase", attribution_days=5)}
    assert (rows["A"].conversions, rows["A"].revenue) == (2, 110.0)
    assert (rows["B"].conversions, rows["B"].revenue) == (0, 0.0)


def test_complaint_event_name_is_the_one_tracking_writes() -> None:
    from tailormail.analytics.metrics import COMPLAINT_EVENT
    from tailormail.track.complaints import COMPLAINED

    assert COMPLAINT_EVENT == COMPLAINED


@pytest.mark.parametrize(
    ("counts", "rates"),
    [
        # sent, delivered, bounced, unsubscribed, complained -> bounce, unsubscribe, complaint rate
        ((10, 8, 2, 1, 2), (0.2, 0.125, 0.25)),
        ((0, 0, 0, 0, 0), (0.0, 0.0, 0.0)),  # nothing sent: zero, not a division error
        ((4, 0, 4, 0, 0), (1.0, 0.0, 0.0)),  # all bounced: no delivered base for the others
    ],
)
def test_bounce_unsubscribe_and_complaint_rates(counts: tuple[int, ...], rates: tuple[float, ...]) -> None:
    from tailormail.analytics.metrics import Metrics

    sent, delivered, bounced, unsubscribed, complained = counts
    m = Metrics({}, sent=sent, delivered=delivered, bounced=bounced, unsubscribed=unsubscribed, complained=complained)
    assert (m.bounce_rate, m.unsubscribe_rate, m.complaint_rate) == pytest.approx(rates)


def test_the_report_shows_every_column_and_the_terminal_the_short_ones() -> None:
    from tailormail.analytics.metrics import COLUMNS, Metrics

    labels = [c.label for c in COLUMNS]
    assert {"bounced", "unsubscribed", "spam complaints", "complaint rate"} <= set(labels)
    assert [c.short for c in COLUMNS if c.short][-2:] == ["spam", "spam %"]
    row = [c.cell(Metrics({}, sent=4, delivered=4, complained=1)) for c in COLUMNS]
    assert row[labels.index("complaint rate")] == "25.00%" and row[labels.index("bounced")] == 0
