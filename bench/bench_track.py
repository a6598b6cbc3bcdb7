"""Tracking endpoints: open pixels and click redirects per second on one core.

A real ``tailormail serve`` (no worker in the process) is pinned to CPU 0 and
a separate client process (bench/track_client.py, keep-alive connections) on
CPU 1 fetches pixel and click URLs carrying valid signed tokens for real sent
emails; every hit is verified, recorded as an event through ingest and
answered.  Baseline in the same run: a bare ASGI app under the same uvicorn,
pinned the same way, answering the same GIF and redirect without doing
anything (bench/track_baseline.py), so the ratio is our overhead.  The server's
own CPU-seconds are read from /proc, so hits per CPU-second holds even on a
busy machine.  Target: >= 2,000 hits/s on one core.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from bench.machine import percentile
from tailormail.clock import to_ms
from tailormail.deliver.memory import MemoryTransport
from tailormail.deliver.outbox import Email, enqueue
from tailormail.deliver.service import open_sender
from tailormail.runtime import open_runtime
from tailormail.store import profiles as profile_q
from tailormail.track import links
from tailormail.workspace import init_workspace

RECIPIENTS = int(os.environ.get("TAILORMAIL_BENCH_TRACK_RECIPIENTS", "1000"))
HITS = int(os.environ.get("TAILORMAIL_BENCH_TRACK_HITS", "6000"))
WARMUP = 300
CONNECTIONS = 16
HERE = Path(__file__).parent


def sent_workspace(root: Path) -> list[tuple[str, int]]:
    """A workspace with RECIPIENTS people, each sent one email; (key, profile id) of each."""
    init_workspace(root)
    rt = open_runtime(root)
    users = [f"u{i}" for i in range(RECIPIENTS)]
    rt.ingestor.ingest_raw([{"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com"}} for u in users])
    sent = []
    with rt.store.begin() as conn:
        ids = profile_q.profile_ids_by_user(conn, users)
        for user in users:
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "shop@example.com", f"{user}@example.com", "Hi"
            msg.set_content("hi")
            key = f"bench/{user}"
            mail = Email(key=key, to=f"{user}@example.com", mime=msg.as_bytes(), profile_id=ids[user], campaign="bench")
            enqueue(conn, mail, now_ms=to_ms(rt.clock.now()))
            sent.append((key, ids[user]))
    sender = open_sender(rt, MemoryTransport())
    while sender.run_round():
        pass
    sender.close()
    rt.close()
    return sent


def hit_paths(secret: str, sent: list[tuple[str, int]], n: int, offset: int = 0) -> list[str]:
    """Half pixel, half click URLs (path only), for emails in turn; a different link per click."""
    out = []
    for i in range(offset, offset + n):
        key, pid = sent[i % len(sent)]
        if i % 2:
            slot = SimpleNamespace(id=i % 7, block="grid", position=i % 7 + 1)
            url = links.click_url("", secret, key, pid, slot, f"https://shop.example/p/{i % 50}")
        else:
            url = links.open_url("", secret, key, pid)
        out.append(url)
    return out


def start(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a server pinned to CPU 0 and wait until it answers."""
    process = subprocess.Popen(
        ["taskset", "-c", "0", *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300  # a busy machine takes a while to import everything
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode() if process.stderr else "server exited")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0)
            return process
        except httpx.TransportError:
            time.sleep(0.1)  # readiness polling of a child process
    process.kill()
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(port: int, paths: list[str], folder: Path, name: str) -> dict[str, object]:
    """Run the client process (pinned to CPU 1) over ``paths``; its JSON result."""
    urls = folder / f"{name}.txt"
    urls.write_text("\n".join(paths))
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, str(HERE / "track_client.py"), "127.0.0.1", str(port), str(urls),
         str(CONNECTIONS)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def measure(command: list[str], port: int, env: dict[str, str], warm: list[str], paths: list[str], folder: Path,
            recorded: Any = None):  # type: ignore[no-untyped-def]  # fmt: skip
    """(client result, server CPU-seconds, seconds until every hit was recorded) for one server, after a warm-up."""
    server = start(command, port, env)
    try:
        load(port, warm, folder, "warm")
        target = len(warm) + len(paths)
        if recorded is not None:
            while recorded() < len(warm):  # the warm-up's hits are in before the clock starts
                time.sleep(0.2)
        before, started = cpu_seconds(server.pid), time.perf_counter()
        result = load(port, paths, folder, "hits")
        while recorded is not None and recorded() < target and time.perf_counter() - started < 900:
            time.sleep(0.2)  # polling another process's progress
        done = time.perf_counter() - started
        used = cpu_seconds(server.pid) - before
    finally:
        server.terminate()
        server.wait(timeout=60)
    return result, used, done


def _recorded(root: Path) -> int:
    """Open and click events in a workspace's database so far."""
    import sqlite3

    db = sqlite3.connect(root / "tailormail.db", timeout=30)
    try:
        return int(
            db.execute("SELECT count(*) FROM events WHERE event IN ('email_opened', 'email_clicked')").fetchone()[0]
        )
    finally:
        db.close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report(label: str, result: dict[str, object], cpu: float) -> float:
    seconds = float(result["seconds"])  # type: ignore[arg-type]
    lat = result["latencies"]
    rate = HITS / seconds
    print(f"  {label:28} {rate:8,.0f} hits/s wall; {HITS / cpu:8,.0f} hits per server CPU-s ({cpu:.1f} CPU-s);"
          f" p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms;"  # type: ignore[arg-type]
          f" statuses {result['statuses']}")  # fmt: skip
    return rate


def main() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TAILORMAIL_DATABASE_URL"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sent = sent_workspace(folder / "ws")
        rt = open_runtime(folder / "ws")
        secret = rt.settings.secret
        rt.close()
        warm, paths = hit_paths(secret, sent, WARMUP), hit_paths(secret, sent, HITS, offset=WARMUP)
        load_avg = os.getloadavg()
        runs = {}
        for mode, batch_ms in (("each hit recorded before answering", 0), ("write-behind, batch_ms = 200", 200)):
            root = folder / f"ws-{batch_ms}"
            shutil.copytree(folder / "ws", root)
            with (root / "tailormail.toml").open("a") as toml:
                toml.write(f"\n[track]\nbatch_ms = {batch_ms}\n")
            port = free_port()
            command = [sys.executable, "-m", "tailormail", "serve", "--no-with-worker", "--port", str(port)]
            result = measure([*command, "-w", str(root)], port, env, warm, paths, folder, lambda r=root: _recorded(r))
            runs[mode] = (*result, _recorded(root))
        port = free_port()
        base, base_cpu, _ = measure(
            [sys.executable, "-m", "bench.track_baseline", str(port)], port, env, warm, paths, folder
        )
        load_after = os.getloadavg()
    print(f"tracking: {HITS:,} hits (half pixel, half click) over {CONNECTIONS} keep-alive connections, "
          f"{RECIPIENTS:,} sent emails; server pinned to 1 core, client on the other")  # fmt: skip
    print(f"  load average before {load_avg[0]:.1f}, after {load_after[0]:.1f}")
    base_rate = report("baseline bare ASGI app", base, base_cpu)
    for mode, (result, cpu, done, recorded) in runs.items():
        print(f"  tailormail serve, {mode}:")
        rate = report("answered", result, cpu)
        print(f"    {'recorded':26} {HITS / done:8,.0f} hits/s until the last event was written"
              f" ({recorded:,} of {HITS + WARMUP:,} hits recorded, warm-up included)")  # fmt: skip
        met = "met" if min(rate, HITS / done) >= 2000 else "NOT met"
        print(f"    ratio to baseline: {rate / base_rate:.2f} wall, {base_cpu / cpu:.2f} CPU;"
              f" target >= 2,000 hits/s on one core: {met}")  # fmt: skip


if __name__ == "__main__":
    main()
