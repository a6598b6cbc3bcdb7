"""Exactly once, shown: a 10,000-recipient campaign and cart-abandonment journeys survive five SIGKILLs.

The campaign is scheduled as `tailormail campaigns send` does; 200 people
abandoned a cart an hour and more ago, so their journey timers are due.  The
worker loop of `tailormail worker` (tests/worker_process.py), in a separate
process, resolves the segment, decides the campaign batch by batch, fires the
journeys' timers, renders, and delivers to a real SMTP server (aiosmtpd, its
own process on loopback) that records every message's Message-ID and
recipient.  The worker is killed with SIGKILL at five seeded random moments,
each chosen as an amount of observable progress (messages received), so kills
land mid-decision and mid-send, and restarted.  In the end everyone intended
got each of their emails, nobody got two different ones for one email, any
redelivery carried the same Message-ID, and no suppressed or unsubscribed
address got anything.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tailormail.clock import to_ms
from tailormail.deliver import message_id_for
from tailormail.deliver.admin import counts, suppress
from tailormail.journeys import campaigns
from tailormail.journeys.service import forget_runners
from tailormail.runtime import Runtime

SINK = Path(__file__).parent / "smtp_sink.py"
WORKER = Path(__file__).parent / "worker_process.py"
RECIPIENTS = 10_000
KILLS = 5
SEED = 20260302
DOMAIN = "shop.example"
PRE_SUPPRESSED = [(7, "bounce"), (1234, "complaint"), (4321, "manual"), (5000, "unsubscribe"), (8888, "unsubscribe")]
LATE_SUPPRESSED = [RECIPIENTS - 3, RECIPIENTS - 2, RECIPIENTS - 1]
"""Suppressed after the first kill, while their mail is still queued: checked at send time."""


def address(i: int) -> str:
    return f"customer{i}@example.org"


CART_EVERY = 50
"""Every 50th person abandoned a cart: 200 cart-abandonment runs."""
UNSUBSCRIBED = 6000
"""Unsubscribed through the preference page (the trait), not on the suppression list."""
SPRING = """---
subject: "Spring sale, {{ customer.firstName | default: 'friend' }}"
from_name: Shop
---
<mj-section><mj-column>
  <mj-text>Hello {{ customer.firstName | default: "there" }}, everything is 20% off.</mj-text>
  <mj-button href="https://shop.example/sale">Shop the sale</mj-button>
  <mj-text font-size="12px"><a href="{{ links.unsubscribe }}">Unsubscribe</a></mj-text>
</mj-column></mj-section>
"""


def prepare(runtime: Runtime, workspace: Path) -> dict[str, set[str]]:
    """People, a segment, the campaign template, cart activity; return address -> intended Message-IDs."""
    for name in ("welcome_series", "birthday", "post_purchase_cross_sell", "win_back"):
        (workspace / "journeys" / f"{name}.yaml").unlink()  # only the journeys this test is about
    (workspace / "segments" / "with_email.yaml").write_text(
        "name: with_email\ndescription: Everyone with an address.\nrule:\n  trait: email\n  exists: true\n"
    )
    (workspace / "templates" / "spring.liquid").write_text(SPRING)
    forget_runners()
    now = runtime.clock.now()
    for start in range(0, RECIPIENTS, 2500):
        batch = []
        for i in range(start, min(RECIPIENTS, start + 2500)):
            traits: dict[str, object] = {"email": address(i), "firstName": f"C{i}", "timezone": "UTC"}
            if i == UNSUBSCRIBED:
                traits["unsubscribed"] = True
            batch.append({"type": "identify", "userId": f"u{i}", "traits": traits})
        runtime.ingestor.ingest_raw(batch)
    carts = [
        {
            "type": "track",
            "userId": f"u{i}",
            "event": "add_to_cart",
            "timestamp": (now - timedelta(hours=2)).isoformat(),
            "properties": {"product_id": f"p{i}", "name": f"Shoe {i}", "price": 80.0, "quantity": 1},
        }
        for i in range(0, RECIPIENTS, CART_EVERY)
    ]
    runtime.ingestor.ingest_raw(carts)
    now_ms = to_ms(now)
    with runtime.store.begin() as conn:
        for i, reason in PRE_SUPPRESSED:
            suppress(conn, address(i), reason, now_ms)
        spring = campaigns.Campaign("spring", "spring", "with_email", now_ms)
        campaigns.schedule(runtime.settings, conn, spring, now_ms)
        runs = conn.exec_driver_sql("select id, profile_id from journey_runs where journey = 'cart_abandonment'").all()
        emails = dict(conn.exec_driver_sql("select id, traits from profiles").all())
        ids = {_email_of(t): pid for pid, t in emails.items()}
    forget_runners()
    assert len(runs) == RECIPIENTS // CART_EVERY
    by_profile = {pid: run_id for run_id, pid in runs}
    intended: dict[str, set[str]] = {}
    for i in range(RECIPIENTS):
        pid = ids[address(i)]
        wanted = {message_id_for(campaigns.message_key("spring", pid), DOMAIN)}
        if pid in by_profile:
            wanted.add(message_id_for(f"cart_abandonment:{by_profile[pid]}:reminder:0", DOMAIN))
        intended[address(i)] = wanted
    return intended


def _email_of(traits: object) -> str:
    import json

    return str((json.loads(traits) if isinstance(traits, str) else traits)["email"])  # type: ignore[index]


def write_smtp_config(workspace: Path, port: int) -> None:
    """Point the workspace at the sink, with a short lease so killed workers' rows come back fast."""
    config = workspace / "tailormail.toml"
    text = config.read_text().split("[deliver]")[0]
    config.write_text(
        # The workers run on the real clock: quiet hours would hold every send at night.
        text + '[journeys]\nquiet_hours = "off"\n\n'
        f'[deliver]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        f'domain = "{DOMAIN}"\nlease_seconds = 3\nbatch_size = 50\nretry_base_seconds = 0.2\n'
    )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    record = tmp_path / "received.tsv"
    proc = subprocess.Popen([sys.executable, str(SINK), str(record)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield port, record
    proc.terminate()
    proc.wait(timeout=10)


def start_worker(workspace: Path) -> subprocess.Popen[bytes]:
    """A worker process running the library's worker loop (as `tailormail worker` does)."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(workspace)], stdout=subprocess.DEVNULL, env=dict(os.environ)
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
    """Poll an observable condition (messages received, rows left); the timeout only stops a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_with_kills(runtime: Runtime, workspace: Path, record: Path, workers: int) -> int:
    """Send everything with ``workers`` worker processes, SIGKILLing one at each seeded moment.

    A moment is a number of messages the SMTP server has received, so the kill
    lands mid-batch: sent, but not yet recorded as sent.
    """
    rng = random.Random(SEED)
    moments = sorted(rng.sample(range(300, RECIPIENTS - 500), KILLS))

    received_count = ReceivedCounter(record)
    procs = [start_worker(workspace) for _ in range(workers)]
    try:
        for kill, received_at_least in enumerate(moments):
            wait_until(lambda n=received_at_least: received_count() >= n, f"{received_at_least} received")  # type: ignore[misc]
            victim = kill % workers
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            if kill == 0:
                suppress_late(runtime)
            procs[victim] = start_worker(workspace)
        wait_until(lambda: drained(runtime), "the campaign decided and the outbox drained")
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
    finally:  # a failed wait must not leave workers sending into the next test
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return len(moments)


def drained(runtime: Runtime) -> bool:
    """Nothing left to decide (campaign members, due journey timers) or to send."""
    with runtime.store.read() as conn:
        pending = conn.exec_driver_sql("select count(*) from campaign_members where status = 'pending'").scalar()
        undecided = conn.exec_driver_sql("select count(*) from campaigns where status != 'done'").scalar()
        due = conn.exec_driver_sql(
            f"select count(*) from journey_timers where fired_at is null and due_at <= {int(time.time() * 1000)}"
        ).scalar()
        status = counts(conn)
    return not pending and not undecided and not due and status["queued"] + status["sending"] == 0


class ReceivedCounter:
    """Counts the sink's record lines, reading only what was appended since the last call."""

    def __init__(self, record: Path) -> None:
        self.record, self.offset, self.lines = record, 0, 0

    def __call__(self) -> int:
        if self.record.exists():
            with self.record.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
            self.offset += len(chunk)
            self.lines += chunk.count(b"\n")
        return self.lines


def suppress_late(runtime: Runtime) -> None:
    """Unsubscribe people whose mail is not sent yet (queued, or not even decided)."""
    with runtime.store.begin() as conn:
        sent = {row[0] for row in conn.exec_driver_sql("select recipient from outbox where status = 'sent'")}
        for i in LATE_SUPPRESSED:
            assert address(i) not in sent, "the late suppressions must not be sent yet to prove the later checks"
            suppress(conn, address(i), "unsubscribe", to_ms(runtime.clock.now()))


def exactly_once(runtime: Runtime, workspace: Path, sink: tuple[int, Path], workers: int) -> None:
    port, record = sink
    write_smtp_config(workspace, port)
    intended = prepare(runtime, workspace)

    assert run_with_kills(runtime, workspace, record, workers) == KILLS

    received: dict[str, list[str]] = defaultdict(list)
    for line in record.read_text().splitlines():
        message_id, rcpt = line.split("\t")
        received[rcpt].append(message_id)
    blocked = {address(i) for i, _ in PRE_SUPPRESSED} | {address(i) for i in LATE_SUPPRESSED}
    blocked.add(address(UNSUBSCRIBED))
    for rcpt in blocked:
        intended.pop(rcpt)
    assert not blocked & set(received), "a suppressed or unsubscribed address received mail"
    assert set(received) == set(intended), "every intended recipient received mail"
    wrong = {rcpt: ids for rcpt, ids in received.items() if set(ids) != intended[rcpt]}
    assert not wrong, f"someone missed an email or got a different Message-ID: {list(wrong.items())[:3]}"
    with runtime.store.read() as conn:
        final = counts(conn)
    emails = sum(len(ids) for ids in intended.values())
    assert final["sent"] == emails and final["queued"] == final["sending"] == 0, final
    redelivered = sum(len(ids) - len(set(ids)) for ids in received.values())
    print(f"{KILLS} kills, {workers} worker(s): {emails} delivered, {redelivered} redelivered (same Message-ID)")


@pytest.mark.slow
def test_a_killed_worker_resends_nothing_twice_on_sqlite(
    runtime: Runtime, workspace: Path, sink: tuple[int, Path]
) -> None:
    if runtime.store.dialect != "sqlite":
        pytest.skip("the SQLite variant; this PostgreSQL run covers two workers below")
    exactly_once(runtime, workspace, sink, workers=1)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_killed_workers_share_the_work_on_postgresql(
    runtime: Runtime, workspace: Path, sink: tuple[int, Path]
) -> None:
    if runtime.store.dialect != "postgresql":
        pytest.skip("needs PostgreSQL: runs in the pass with TAILORMAIL_TEST_DATABASE_URL set")
    exactly_once(runtime, workspace, sink, workers=2)
