"""Write-behind tracking: hits are answered at once and recorded in batches, none lost on a clean shutdown."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tailormail.api.app import create_app
from tailormail.clock import ManualClock
from tailormail.runtime import Runtime, open_runtime
from tailormail.store.schema import events
from tailormail.track import links
from tailormail.track.buffer import HitBuffer
from tailormail.track.hits import Visitor, open_hit
from test_metrics import USERS, send_campaign
from test_track import BASE, BROWSER, Slot


def email_events(runtime: Runtime) -> dict[str, int]:
    with runtime.store.read() as conn:
        stmt = select(events.c.event, func.count()).where(events.c.event.in_(["email_opened", "email_clicked"]))
        return {name: n for name, n in conn.execute(stmt.group_by(events.c.event))}


def test_buffered_hits_are_answered_then_recorded_at_shutdown(workspace: Path, clock: ManualClock) -> None:
    with (workspace / "tailormail.toml").open("a") as toml:
        toml.write("\n[track]\nbatch_ms = 60000\n")  # longer than the test: only shutdown records them
    runtime = open_runtime(workspace, clock=clock)
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": u, "traits": {}} for u in USERS])
    keys = send_campaign(runtime, clock, "spring", dict.fromkeys(USERS, "A"))
    clock.advance(timedelta(hours=1))
    secret = runtime.settings.secret
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        for key, pid in keys.values():
            pixel = client.get(
                links.open_url(BASE, secret, key, pid).removeprefix(BASE), headers={"User-Agent": BROWSER}
            )
            assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
        key, pid = keys["a"]
        click = links.click_url(BASE, secret, key, pid, Slot(2, "grid", 3), "https://shop.example/p")
        answer = client.get(click.removeprefix(BASE), headers={"User-Agent": BROWSER})
        assert answer.status_code == 302 and answer.headers["location"] == "https://shop.example/p"
        forged = client.get("/c/" + click.rsplit("/", 1)[1][:-2] + "xx")
        assert forged.status_code == 404  # verified before answering, buffered or not
        assert email_events(runtime) == {}  # answered, not yet written
    assert email_events(runtime) == {"email_opened": len(USERS), "email_clicked": 1}
    runtime.close()


def test_flush_records_a_batch_in_one_ingest_call(runtime: Runtime, clock: ManualClock) -> None:
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": u, "traits": {}} for u in USERS])
    keys = send_campaign(runtime, clock, "spring", dict.fromkeys(USERS, "A"))
    clock.advance(timedelta(hours=1))
    calls: list[int] = []
    ingest = runtime.ingestor.ingest
    runtime.ingestor.ingest = lambda messages: calls.append(len(messages)) or ingest(messages)  # type: ignore[method-assign]
    buffer = HitBuffer(runtime, delay_s=3600)
    for key, pid in keys.values():
        token = links.open_url("", runtime.settings.secret, key, pid).removeprefix("/o/").removesuffix(".gif")
        buffer.add(open_hit(runtime, token, Visitor(BROWSER)))
    assert buffer.flush() == len(USERS) and calls == [len(USERS)]
    buffer.close()
    assert email_events(runtime) == {"email_opened": len(USERS)}
