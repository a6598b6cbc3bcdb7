"""Journeys and campaigns through the HTTP API: the same definitions, checks and actions as the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailormail.api.app import create_app
from tailormail.clock import ManualClock, to_ms
from tailormail.journeys.definitions import load_journeys
from tailormail.journeys.service import forget_runners, runner_for
from tailormail.runtime import Runtime, journey_effects
from tailormail.store import keys
from tailormail.throttle import FILES_CHECK_SECONDS

WINBACK = {
    "description": "Ask lapsed people back, once.",
    "entry": {"event": "$add_to_cart"},
    "goal": "$purchase",
    "steps": [{"id": "wait_2h", "wait": "2 hours"}, {"id": "nudge", "send": "win_back"}],
}


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    forget_runners()
    with TestClient(create_app(runtime)) as c:
        yield c
    forget_runners()


@pytest.fixture
def auth(runtime: Runtime, clock: ManualClock) -> dict[str, str]:
    with runtime.store.begin() as conn:
        return {"Authorization": f"Bearer {keys.create_key(conn, 'admin', 't', to_ms(clock.now()))[1]}"}


def test_a_journey_saved_as_json_is_validated_written_and_followed(
    runtime: Runtime, client: TestClient, auth: dict[str, str]
) -> None:
    bad = {**WINBACK, "steps": [{"id": "nudge", "sned": "win_back"}]}
    refused = client.put("/v1/journeys/winback_api", json=bad, headers=auth)
    assert refused.status_code == 400 and refused.json()["field"] == "steps[0].sned", refused.text
    assert "'send'" in refused.json()["hint"]
    assert "winback_api" not in load_journeys(runtime.settings)  # nothing half-written
    saved = client.put("/v1/journeys/winback_api", json=WINBACK, headers=auth)
    assert saved.status_code == 200, saved.text
    assert list(saved.json()["nodes"]) == ["wait_2h", "nudge"] and saved.json()["paused"] is False
    assert "winback_api" in load_journeys(runtime.settings)  # a YAML file like any other
    assert "winback_api" in runner_for(runtime.settings, lambda: journey_effects(runtime.settings)).journeys
    listed = {j["journey"]: j for j in client.get("/v1/journeys", headers=auth).json()}
    assert listed["winback_api"]["state"] == "live" and "cart_abandonment" in listed
    assert client.post("/v1/journeys/winback_api/pause", headers=auth).json()["paused"] is True
    assert {j["journey"]: j for j in client.get("/v1/journeys", headers=auth).json()}["winback_api"][
        "state"
    ] == "paused"
    client.post("/v1/journeys/winback_api/resume", headers=auth)
    assert client.delete("/v1/journeys/winback_api", headers=auth).status_code == 204
    assert client.get("/v1/journeys/winback_api", headers=auth).status_code == 404


def test_the_dry_run_answers_with_the_path_and_the_emails(
    runtime: Runtime, client: TestClient, auth: dict[str, str]
) -> None:
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": "ann", "traits": {"email": "ann@example.org"}}])
    cart = {"type": "track", "event": "add_to_cart", "timestamp": "2026-03-02T12:00:00Z", "properties": {"price": 9}}
    answer = client.post("/v1/journeys/cart_abandonment/test", json={"profile": "ann", "events": [cart]}, headers=auth)
    assert answer.status_code == 200, answer.text
    assert [e["template"] for e in answer.json()["emails"]] == ["cart_reminder", "cart_recommendations"]
    missing = client.post("/v1/journeys/cart_abandonment/test", json={"events": []}, headers=auth)
    assert missing.status_code == 400 and missing.json()["field"] == "profile"


def test_campaigns_are_scheduled_checked_listed_and_cancelled(
    runtime: Runtime, client: TestClient, auth: dict[str, str]
) -> None:
    body = {"template": "newsletter", "segment": "new_subscribers", "at": "+2h", "name": "spring",
            "ab": "subject", "subjects": ["Spring is here", "Hello spring"], "holdout": "10%"}  # fmt: skip
    created = client.post("/v1/campaigns", json=body, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "scheduled" and created.json()["subjects"] == body["subjects"]
    assert created.json()["send_at"] == to_ms(runtime.clock.now()) + 2 * 3_600_000
    again = client.post("/v1/campaigns", json=body, headers=auth)
    assert again.status_code == 400 and again.json()["field"] == "name"
    one_subject = client.post("/v1/campaigns", json={**body, "name": "x", "subjects": ["only"]}, headers=auth)
    assert one_subject.status_code == 400 and one_subject.json()["field"] == "subject"
    unknown = client.post("/v1/campaigns", json={**body, "name": "y", "segment": "new_subscriber"}, headers=auth)
    assert unknown.status_code == 404 and "new_subscribers" in unknown.json()["message"] + str(unknown.json())
    assert [c["name"] for c in client.get("/v1/campaigns", headers=auth).json()] == ["spring"]
    assert client.post("/v1/campaigns/spring/cancel", headers=auth).json()["status"] == "cancelled"


def test_write_keys_may_not_touch_journeys_or_campaigns(
    runtime: Runtime, clock: ManualClock, client: TestClient
) -> None:
    with runtime.store.begin() as conn:
        write = {"Authorization": f"Bearer {keys.create_key(conn, 'write', 't', to_ms(clock.now()))[1]}"}
    assert client.get("/v1/journeys", headers=write).status_code == 403
    assert client.post("/v1/campaigns", json={}, headers=write).status_code == 403
    assert client.get("/v1/campaigns").status_code == 401


def test_a_changed_journey_file_rebuilds_the_cached_runner_within_a_second(runtime: Runtime) -> None:
    """The folder is compared once per FILES_CHECK_SECONDS of the (injected) clock; an edit is seen after that."""
    forget_runners()
    seconds = [100.0]

    def clock() -> float:
        return seconds[0]

    def runner() -> Any:
        return runner_for(runtime.settings, lambda: journey_effects(runtime.settings), clock=clock)

    first = runner()
    assert runner() is first
    path = runtime.settings.workspace / "journeys" / "birthday.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    seconds[0] += FILES_CHECK_SECONDS / 2
    assert runner() is first  # not compared yet
    seconds[0] += FILES_CHECK_SECONDS / 2
    second = runner()
    assert second is not first
    seconds[0] += FILES_CHECK_SECONDS
    assert runner() is second  # compared again: unchanged
    forget_runners()
