"""Journey webhook steps post for real: signed, at least once, retried, never to a refused address."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tailormail.clock import ManualClock, to_ms
from tailormail.deliver.webhooks import SIGNATURE_HEADER, verify_signature
from tailormail.journeys.service import forget_runners
from tailormail.journeys.webhooks import IDEMPOTENCY_HEADER
from tailormail.runtime import Runtime, open_runtime
from tailormail.store import webhooks as q
from tailormail.worker import make_worker


class Receiver:
    """A real HTTP server on loopback that records POSTs and answers from a script of status codes."""

    def __init__(self, answers: list[int]) -> None:
        self.answers, self.received = list(answers), []  # type: ignore[var-annotated]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver([503])  # the first try fails temporarily
    yield server
    server.close()


def journey_with_webhook(workspace: Path, url: str, allow_private: bool) -> None:
    (workspace / "journeys" / "crm_ping.yaml").write_text(
        "description: Tell the CRM about a new lead.\n"
        "kind: transactional\n"
        "entry:\n  event: lead_created\n"
        f"steps:\n  - {{id: tell_crm, webhook: '{url}'}}\n"
    )
    config = workspace / "tailormail.toml"
    text = config.read_text()
    if allow_private:
        text = text.replace(
            "[journeys]\n", "[journeys]\nwebhook_allow_private = true\nwebhook_retry_base_seconds = 10\n"
        )
    config.write_text(text)


def lead(runtime: Runtime, clock: ManualClock) -> None:
    runtime.ingestor.ingest_raw(
        [
            {"type": "identify", "userId": "ann", "traits": {"email": "ann@example.com"}},
            {"type": "track", "userId": "ann", "event": "lead_created", "timestamp": clock.now().isoformat()},
        ]
    )


def test_a_webhook_step_posts_signed_with_its_key_and_retries_with_backoff(
    workspace: Path, clock: ManualClock, receiver: Receiver
) -> None:
    forget_runners()
    journey_with_webhook(workspace, receiver.url, allow_private=True)
    runtime = open_runtime(workspace, clock=clock)
    try:
        lead(runtime, clock)
        with runtime.store.read() as conn:
            (row,) = q.all_posts(conn)
        assert row["status"] == "queued" and receiver.received == [], "queued in the step's transaction, not posted"
        worker = make_worker(runtime)
        worker.run_once()
        assert len(receiver.received) == 1
        with runtime.store.read() as conn:
            (row,) = q.all_posts(conn)
        assert row["status"] == "queued" and row["last_status"] == 503
        assert 5_000 <= row["next_attempt_at"] - to_ms(clock.now()) <= 10_000, "backoff with jitter: 5-10 s"
        clock.advance(timedelta(seconds=11))
        worker.run_once()
        worker.run_once()
        assert len(receiver.received) == 2, "retried once, then done"
        with runtime.store.read() as conn:
            (row,) = q.all_posts(conn)
        assert row["status"] == "sent" and row["attempts"] == 2
        first, second = receiver.received
        assert first[0][IDEMPOTENCY_HEADER] == second[0][IDEMPOTENCY_HEADER] == row["idempotency_key"]
        headers, body = second
        now_s = int(clock.now().timestamp())
        assert verify_signature(runtime.settings.secret, body, headers[SIGNATURE_HEADER], now_s)
        assert not verify_signature("another secret", body, headers[SIGNATURE_HEADER], now_s)
        payload = json.loads(body)
        assert payload["journey"] == "crm_ping" and payload["profile"]["user_id"] == "ann"
        assert payload["profile"]["traits"]["email"] == "ann@example.com"
    finally:
        runtime.close()
        forget_runners()


def test_a_loopback_webhook_is_refused_unless_allowed(workspace: Path, clock: ManualClock, receiver: Receiver) -> None:
    forget_runners()
    journey_with_webhook(workspace, receiver.url, allow_private=False)
    runtime = open_runtime(workspace, clock=clock)
    try:
        lead(runtime, clock)
        make_worker(runtime).run_once()
        with runtime.store.read() as conn:
            (row,) = q.all_posts(conn)
        assert receiver.received == [], "nothing reached the loopback server"
        assert row["status"] == "failed" and "non-public address" in row["last_error"]
    finally:
        runtime.close()
        forget_runners()
