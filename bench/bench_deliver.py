"""Delivery throughput: our sender (outbox -> SMTP) against a raw aiosmtplib client.

Both send the same prebuilt messages to the same SMTP sink (aiosmtpd in its own
process on loopback, tests/smtp_sink.py) over 16 connections.  Ours also claims
rows from the SQLite outbox, checks suppressions and records every attempt.
The rows are queued as campaigns and journeys queue them, finished: the signed
List-Unsubscribe headers are added at enqueue, which is not timed (it is part
of the step that decides the email).  Target: ours >= 0.9x raw.  Each run also
reports this process's CPU time per message (all its threads; not the sink's).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from bench.machine import describe
from tailormail.clock import SystemClock, to_ms
from tailormail.deliver import Email, enqueue_many
from tailormail.deliver.service import finisher_for, open_sender
from tailormail.runtime import open_runtime
from tailormail.workspace import init_workspace

SINK = Path(__file__).resolve().parent.parent / "tests" / "smtp_sink.py"
MESSAGES = int(os.environ.get("BENCH_DELIVER_MESSAGES", "3000"))
CONNECTIONS = 16
ROUNDS = int(os.environ.get("BENCH_DELIVER_PAIRS", "4"))
"""Pairs of runs, alternating which side goes first, so a busy moment hits both sides alike."""


def prebuilt(n: int, tag: str) -> list[Email]:
    """N personalised ~2 KB messages, as content would hand them over."""
    body = "We picked these for you, based on what you looked at last week.\r\n" * 30
    return [
        Email(
            key=f"bench:{tag}/profile:{i}",
            to=f"customer{i}@example.org",
            mime=(
                f"From: Shop <news@shop.example>\r\nTo: customer{i}@example.org\r\nSubject: For you, {i}\r\n"
                f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            ).encode(),
            profile_id=i,
            campaign=tag,
        )
        for i in range(n)
    ]


@dataclass(frozen=True)
class Run:
    """One side's run: messages/s on the wall clock and CPU of this process per message."""

    rate: float
    cpu_us: float


async def raw_send(port: int, emails: list[Email]) -> Run:
    """16 connections, each taking the next message from a shared queue."""
    queue: asyncio.Queue[Email] = asyncio.Queue()
    for email in emails:
        queue.put_nowait(email)

    async def connection() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
            while not queue.empty():
                email = queue.get_nowait()
                await client.sendmail("news@shop.example", [email.to], email.mime)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    return _run(len(emails), start, cpu)


def ours(workspace: Path, emails: list[Email]) -> Run:
    """Enqueue (not timed), then drain the outbox with the worker's sender."""
    runtime = open_runtime(workspace, clock=SystemClock())
    with runtime.store.begin() as conn:
        # As a campaign or journey queues mail: finished (List-Unsubscribe signed) when queued.
        enqueue_many(conn, emails, now_ms=to_ms(runtime.clock.now()), finish=finisher_for(runtime.settings))
    sender = open_sender(runtime)
    start, cpu = time.perf_counter(), time.process_time()
    while sender.run_round():
        pass
    run = _run(len(emails), start, cpu)
    sender.close()
    runtime.close()
    return run


def _run(n: int, start: float, cpu: float) -> Run:
    # process_time counts every thread of this process (the sender's database thread too), not the sink.
    return Run(n / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / n)


def make_workspace(root: Path, port: int) -> Path:
    os.environ.pop("TAILORMAIL_DATABASE_URL", None)
    init_workspace(root)
    config = root / "tailormail.toml"
    text = config.read_text().split("[deliver]")[0]
    config.write_text(
        text + f'[deliver]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        f"connections = {CONNECTIONS}\nbatch_size = 500\n"
    )
    return root


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "received.tsv"
        sink = subprocess.Popen([sys.executable, str(SINK), str(record)], stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        try:
            workspace = make_workspace(Path(tmp) / "ws", port)
            raw_runs: list[Run] = []
            our_runs: list[Run] = []
            loads = [os.getloadavg()[0]]
            for r in range(ROUNDS):
                runs = [
                    lambda r=r: raw_runs.append(asyncio.run(raw_send(port, prebuilt(MESSAGES, f"raw{r}")))),
                    lambda r=r: our_runs.append(ours(workspace, prebuilt(MESSAGES, f"ours{r}"))),
                ]
                for run in runs if r % 2 == 0 else runs[::-1]:
                    run()
                loads.append(os.getloadavg()[0])
        finally:
            sink.terminate()
            sink.wait()
        received = record.read_bytes().count(b"\n")
    raw_rates, our_rates = [r.rate for r in raw_runs], [r.rate for r in our_runs]
    raw, mine = max(raw_rates), max(our_rates)
    ratios = [o / r for o, r in zip(our_rates, raw_rates, strict=True)]
    raw_cpu, our_cpu = statistics.median(r.cpu_us for r in raw_runs), statistics.median(r.cpu_us for r in our_runs)
    print(describe())
    print(f"messages per run: {MESSAGES}, connections: {CONNECTIONS}, {ROUNDS} pairs; sink received {received}")
    print(f"raw aiosmtplib, 16 connections:  best {raw:8.0f} messages/s  (all: {_rates(raw_rates)})")
    print(f"tailormail outbox -> SMTP:        best {mine:8.0f} messages/s  (all: {_rates(our_rates)})")
    print(f"paired ratios: {', '.join(f'{x:.2f}' for x in ratios)}")
    print(f"ratio of bests: {mine / raw:.2f}x, median paired ratio: {statistics.median(ratios):.2f}x (target >= 0.9x)")
    print(f"CPU of this process per message (median): raw {raw_cpu:.0f} us, ours {our_cpu:.0f} us")
    print(f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")


def _rates(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


if __name__ == "__main__":
    main()
