"""A real `tailormail serve` process on loopback, for client and end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(
    workspace: Path, *, env: dict[str, str] | None = None, ready_within: float = 30.0, args: tuple[str, ...] = ()
) -> Iterator[str]:
    """Run `tailormail serve` for ``workspace`` (with extra ``args``); yield its base URL; stop it after."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tailormail", "serve", "--port", str(port), "--workspace", str(workspace), *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base, ready_within)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_ready(process: subprocess.Popen[bytes], base: str, within: float) -> None:
    """Poll /health until the server answers (a readiness check, bounded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(base + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # readiness polling of a child process, not a test wait on our own logic
    raise RuntimeError(f"server at {base} did not become ready in {within} s")
