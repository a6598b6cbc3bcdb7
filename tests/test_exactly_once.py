"""Exactly once, shown: a 10,000-recipient broadcast survives five SIGKILLs of its worker.

A real SMTP server (aiosmtpd, its own process on loopback) records every
message's Message-ID and recipient.  The sender is the worker loop of
`tailormail worker` (tests/worker_process.py) in a separate process, killed
with SIGKILL at five seeded random moments, each chosen as an amount of
observable progress (messages received), then restarted.  In the end everyone
intended got the email, nobody got two different ones, any redelivery carried
the same Message-ID, and no suppressed address got anything.
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
from pathlib import Path

import pytest

from tailormail.clock import to_ms
from tailormail.deliver import Email, enqueue_many, message_id_for
from tailormail.deliver.admin import counts, suppress
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


def broadcast(n: int) -> list[Email]:
    """The spring-sale broadcast, one finished MIME message per recipient."""
    return [
        Email(
            key=f"campaign:spring/profile:{i}",
            to=address(i),
            mime=(
                f"From: Shop <news@{DOMAIN}>\r\nTo: {address(i)}\r\nSubject: Spring sale, customer {i}\r\n"
                "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                f"Hello customer {i}, everything is 20% off.\r\n"
            ).encode(),
            profile_id=i,
            campaign="spring",
        )
        for i in range(n)
    ]


def write_smtp_config(workspace: Path, port: int) -> None:
    """Point the workspace at the sink, with a short lease so killed workers' rows come back fast."""
    config = workspace / "tailormail.toml"
    text = config.read_text().split("[deliver]")[0]
    config.write_text(
        text + f'[deliver]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        "lease_seconds = 3\nbatch_size = 50\nretry_base_seconds = 0.2\n"
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

    def status() -> dict[str, int]:
        with runtime.store.read() as conn:
            return counts(conn)

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
        wait_until(lambda: status()["queued"] + status()["sending"] == 0, "the outbox to drain")
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
    finally:  # a failed wait must not leave workers sending into the next test
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return len(moments)


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
    with runtime.store.begin() as conn:
        queued = {row[0] for row in conn.exec_driver_sql("select recipient from outbox where status = 'queued'")}
        for i in LATE_SUPPRESSED:
            assert address(i) in queued, "the late suppressions must still be queued to prove the send-time check"
            suppress(conn, address(i), "unsubscribe", to_ms(runtime.clock.now()))


def exactly_once(runtime: Runtime, workspace: Path, sink: tuple[int, Path], workers: int) -> None:
    port, record = sink
    write_smtp_config(workspace, port)
    now_ms = to_ms(runtime.clock.now())
    with runtime.store.begin() as conn:
        for i, reason in PRE_SUPPRESSED:
            suppress(conn, address(i), reason, now_ms)
        enqueue_many(conn, broadcast(RECIPIENTS), now_ms=now_ms)

    assert run_with_kills(runtime, workspace, record, workers) == KILLS

    received: dict[str, list[str]] = defaultdict(list)
    for line in record.read_text().splitlines():
        message_id, rcpt = line.split("\t")
        received[rcpt].append(message_id)
    blocked = {address(i) for i, _ in PRE_SUPPRESSED} | {address(i) for i in LATE_SUPPRESSED}
    intended = {address(i): message_id_for(f"campaign:spring/profile:{i}", DOMAIN) for i in range(RECIPIENTS)}
    for rcpt in blocked:
        intended.pop(rcpt)
    assert not blocked & set(received), "a suppressed or unsubscribed address received mail"
    assert set(received) == set(intended), "every intended recipient received the email"
    different = {rcpt: ids for rcpt, ids in received.items() if set(ids) != {intended[rcpt]}}
    assert not different, f"someone received a different Message-ID: {list(different.items())[:3]}"
    with runtime.store.read() as conn:
        final = counts(conn)
    assert final["sent"] == len(intended) and final["suppressed"] == len(blocked), final
    redelivered = sum(len(ids) - 1 for ids in received.values())
    print(f"{KILLS} kills, {workers} worker(s): {len(intended)} delivered, {redelivered} redelivered (same Message-ID)")


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
