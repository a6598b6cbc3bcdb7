"""`journeys test`: a dry run on a virtual clock shows the path and changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from tailormail.clock import from_ms
from tailormail.journeys.dryrun import dry_run
from tailormail.runtime import Runtime
from tailormail.store.schema import events
from tailormail.store.schema_journeys import journey_runs


def count(runtime: Runtime, table) -> int:  # type: ignore[no-untyped-def]
    with runtime.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_cart_abandonment_dry_run_shows_both_emails_and_keeps_nothing(runtime: Runtime) -> None:
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": "ann", "traits": {"timezone": "Europe/Paris"}}])
    before = count(runtime, events)
    cart = [{"event": "add_to_cart", "timestamp": "2026-03-02T09:00:00Z", "properties": {"product_id": "p1"}}]
    result = dry_run(runtime, "cart_abandonment", "ann", cart)
    assert [e.template for e in result.emails] == ["cart_reminder", "cart_recommendations"]
    assert [from_ms(e.at_ms).isoformat() for e in result.emails] == [
        "2026-03-02T10:00:00+00:00",
        "2026-03-03T09:00:00+00:00",
    ]
    assert result.timeline[0]["action"] == "entered"
    assert result.timeline[-1]["action"] == "finished"
    assert count(runtime, events) == before and count(runtime, journey_runs) == 0


def test_a_purchase_in_the_file_ends_the_dry_run_early(runtime: Runtime) -> None:
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": "bob", "traits": {}}])
    timeline = [
        {"event": "add_to_cart", "timestamp": "2026-03-02T09:00:00Z"},
        {"event": "purchase", "timestamp": "2026-03-02T09:30:00Z", "properties": {"revenue": 30}},
    ]
    result = dry_run(runtime, "cart_abandonment", "bob", timeline)
    assert result.emails == []
    assert result.timeline[-1]["detail"] == {"reason": "goal"}


def test_a_dry_run_starts_even_when_the_person_is_already_in_the_journey(runtime: Runtime) -> None:
    # Ann's real cart run is waiting for its reminder: the dry run still shows the journey from
    # its entry (re-entry rules waived, her real run set aside in the rolled-back transaction).
    runtime.ingestor.ingest_raw(
        [
            {"type": "identify", "userId": "ann", "traits": {}},
            {"type": "track", "userId": "ann", "event": "add_to_cart", "properties": {"product_id": "p9"}},
        ]
    )
    with runtime.store.read() as conn:
        real = [(r.id, r.status, r.position) for r in conn.execute(select(journey_runs))]
    assert len(real) == 1 and real[0][1] == "waiting"
    cart = [{"event": "add_to_cart", "timestamp": "2026-03-02T09:00:00Z", "properties": {"product_id": "p1"}}]
    result = dry_run(runtime, "cart_abandonment", "ann", cart)
    assert [e.template for e in result.emails] == ["cart_reminder", "cart_recommendations"]
    assert result.timeline[0]["action"] == "entered"
    with runtime.store.read() as conn:
        assert [(r.id, r.status, r.position) for r in conn.execute(select(journey_runs))] == real
