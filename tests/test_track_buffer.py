"""Write-behind tracking: hits are answered at once and recorded in batches, none lost on a clean shutdown."""

from __future__ import annotations

import os
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


CRASHING_PROCESS = """
import os, signal, sys
from tailormail.clock import ManualClock, parse_time
from tailormail.runtime import open_runtime
from tailormail.track.buffer import HitBuffer
from tailormail.track.hits import Visitor, open_hit
workspace, now, tokens = sys.argv[1], sys.argv[2], sys.argv[3:]
runtime = open_runtime(workspace, clock=ManualClock(parse_time(now)))
buffer = HitBuffer(runtime, delay_s=3600)  # never records on its own before the kill
for token in tokens:
    buffer.add(open_hit(runtime, token, Visitor("Mozilla/5.0 (Windows NT 10.0) Chrome/120")))
print("accepted", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_hits_accepted_by_a_killed_process_are_recorded_by_the_next(runtime: Runtime, clock: ManualClock) -> None:
    import subprocess
    import sys

    runtime.ingestor.ingest_raw([{"type": "identify", "userId": u, "traits": {}} for u in USERS])
    keys = send_campaign(runtime, clock, "spring", dict.fromkeys(USERS, "A"))
    clock.advance(timedelta(hours=1))
    tokens = [
        links.open_url("", runtime.settings.secret, key, pid).removeprefix("/o/").removesuffix(".gif")
        for key, pid in keys.values()
    ]
    workspace = str(runtime.settings.workspace)
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_PROCESS, workspace, clock.now().isoformat(), *tokens],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TAILORMAIL_DATABASE_URL": runtime.store.url},
    )  # fmt: skip
    assert done.returncode == -9 and "accepted" in done.stdout, done.stderr
    assert email_events(runtime) == {}  # accepted and answered, never recorded: the process died
    buffer = HitBuffer(runtime, delay_s=3600)  # the next process replays the orphaned journal
    assert buffer.flush() == len(USERS)
    buffer.close()
    assert email_events(runtime) == {"email_opened": len(USERS)}
    assert not list((runtime.settings.workspace / "spool").iterdir())  # journals are gone once recorded
    again = HitBuffer(runtime, delay_s=3600)
    assert again.flush() == 0  # nothing replayed twice
    again.close()
