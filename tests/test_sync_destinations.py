"""Outbound destinations: outbox in the ingest transaction, signed POSTs, retries, dead letters, rate limit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from crm_peer import Peer, append_config, serve
from tailormail.clock import ManualClock
from tailormail.deliver.webhooks import SIGNATURE_HEADER, verify_signature
from tailormail.runtime import Runtime, open_runtime
from tailormail.store import sync as sync_q
from tailormail.sync import tasks
from tailormail.worker import make_worker


def configure(workspace: Path, url: str, **extra: Any) -> None:
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items())
    append_config(
        workspace,
        f"""
[[sync.destinations]]
name = "crm"
url = "{url}"
on_events = ["purchase", "segment_entered"]
on_traits = ["predicted.churn"]
send = "event"
allow_private = true
backoff_seconds = 10
{lines}""",
    )


def purchase(n: int) -> dict[str, Any]:
    return {"type": "track", "event": "purchase", "userId": f"u{n}", "messageId": f"p{n}", "properties": {"total": n}}


def ok(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
    return 200, {}, {}


def open_rt(workspace: Path, clock: ManualClock) -> Runtime:
    return open_runtime(workspace, clock=clock)


def outbox(rt: Runtime, status: str) -> list[dict[str, Any]]:
    with rt.store.read() as conn:
        return sync_q.deliveries(conn, "crm", status)


def test_chosen_events_and_trait_changes_are_posted_signed(workspace: Path, clock: ManualClock) -> None:
    with serve({"/in": ok}) as peer:
        configure(workspace, f"{peer.base_url}/in")
        rt = open_rt(workspace, clock)
        try:
            rt.ingestor.ingest_raw(
                [
                    {"type": "identify", "userId": "u1", "messageId": "i1", "traits": {"plan": "pro"}},
                    purchase(1),
                    {"type": "track", "event": "product_view", "userId": "u1", "messageId": "v1"},
                    {"type": "identify", "userId": "u1", "messageId": "i2", "traits": {"predicted": {"churn": 0.8}}},
                ]
            )
            assert len(outbox(rt, "pending")) == 2  # the purchase and the score change; not the view or plan
            assert make_worker(rt).run_once()["sync_destinations"] == 2
            nothing = tasks.run_now(rt, "crm")  # a manual run with nothing due is still logged
            assert (nothing["status"], nothing["read"]) == ("ok", 0)
        finally:
            rt.close()
    bodies = [(json.loads(body), headers) for _, _, headers, body in peer.requests]
    triggers = sorted(b["trigger"] for b, _ in bodies)
    assert triggers == ["purchase", "trait:predicted.churn"]
    for body, headers in bodies:
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        assert verify_signature(rt.settings.secret, raw, headers[SIGNATURE_HEADER], int(clock.now().timestamp()))
        assert headers["Idempotency-Key"] == f"crm:{body['messageId']}"
        assert body["profile"]["userId"] == "u1" and body["profile"]["traits"]["plan"] == "pro"


def test_a_replayed_event_is_not_delivered_twice(workspace: Path, clock: ManualClock) -> None:
    configure(workspace, "http://127.0.0.1:9/in")
    rt = open_rt(workspace, clock)
    try:
        rt.ingestor.ingest_raw([purchase(1)])
        rt.ingestor.ingest_raw([purchase(1)])
        assert len(outbox(rt, "pending")) == 1
    finally:
        rt.close()


def test_failures_back_off_then_go_to_the_dead_letter_list(workspace: Path, clock: ManualClock) -> None:
    def broken(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
        return 503, {"error": "down"}, {}

    with serve({"/in": broken}) as peer:
        configure(workspace, f"{peer.base_url}/in", max_attempts=3)
        rt = open_rt(workspace, clock)
        try:
            rt.ingestor.ingest_raw([purchase(1)])
            assert tasks.deliver_outbox(rt, clock.now()) == 1
            (pending,) = outbox(rt, "pending")
            wait = pending["next_attempt_at"] - int(clock.now().timestamp() * 1000)
            assert 5_000 <= wait <= 10_000  # first retry: base 10 s, jittered
            assert tasks.deliver_outbox(rt, clock.now()) == 0  # not due yet
            for _ in range(2):
                clock.advance(timedelta(minutes=1))
                tasks.deliver_outbox(rt, clock.now())
            (dead,) = outbox(rt, "dead")
            runs = tasks.history(rt, "crm")
            requeued = tasks.dead_letters(rt, "crm", requeue=True)
            manual = tasks.run_now(rt, "crm")  # the requeued delivery goes out again (and fails again)
        finally:
            rt.close()
    assert dead["attempts"] == 3 and "HTTP 503" in dead["last_error"]
    assert [r["failed"] for r in runs] == [1, 1, 1] and runs[0]["retries"] == 1
    assert "dead-lettered" in runs[0]["errors"][-1]["message"]
    assert len(requeued) == 1 and requeued[0]["attempts"] == 0
    assert (manual["trigger"], manual["read"], manual["failed"]) == ("manual", 1, 1) and len(peer.requests) == 4


def test_the_rate_limit_spreads_deliveries_over_rounds(workspace: Path, clock: ManualClock) -> None:
    with serve({"/in": ok}) as peer:
        configure(workspace, f"{peer.base_url}/in", rate_per_second=2)
        rt = open_rt(workspace, clock)
        try:
            rt.ingestor.ingest_raw([purchase(n) for n in range(5)])
            sent = [tasks.deliver_outbox(rt, clock.now())]
            for _ in range(3):
                clock.advance(timedelta(seconds=1))
                sent.append(tasks.deliver_outbox(rt, clock.now()))
        finally:
            rt.close()
    assert sent == [2, 2, 1, 0] and len(peer.requests) == 5


@pytest.mark.parametrize("allowed", [False, True])
def test_loopback_destinations_need_allow_private(workspace: Path, clock: ManualClock, allowed: bool) -> None:
    with serve({"/in": ok}) as peer:
        configure(workspace, f"{peer.base_url}/in")
        config = workspace / "tailormail.toml"
        config.write_text(config.read_text().replace("allow_private = true", f"allow_private = {str(allowed).lower()}"))
        rt = open_rt(workspace, clock)
        try:
            rt.ingestor.ingest_raw([purchase(1)])
            tasks.deliver_outbox(rt, clock.now())
            dead = outbox(rt, "dead")
        finally:
            rt.close()
    if allowed:
        assert dead == [] and len(peer.requests) == 1
    else:
        assert peer.requests == [] and "non-public address" in dead[0]["last_error"]
