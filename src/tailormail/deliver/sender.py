"""The send loop: claim due mail, honour suppressions and rate limits, send, record.

One round claims a batch in a short write transaction (with a lease), sends it
over the transport outside any transaction, and records every outcome in a
second one.  A worker killed between the two leaves its rows ``sending``; once
the lease runs out another round claims them again and sends them with the
same Message-ID, so a receiver can tell the redelivery from a second email.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tailormail.clock import Clock, to_ms
from tailormail.deliver.headers import Signer, dkim_sign, finish, is_finished
from tailormail.deliver.outbox import domain_of
from tailormail.deliver.pacing import RateLimiter, retry_delay_ms
from tailormail.deliver.settings import DeliverSettings
from tailormail.deliver.transport import Envelope, SendResult, Transport, classify
from tailormail.store import Store
from tailormail.store import deliver as queries

log = logging.getLogger("tailormail.deliver")

INTERRUPTED = SendResult(0, "interrupted: the worker stopped before recording a reply")


def new_worker_id() -> str:
    """A name for this sender in leases and the attempts log: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def decide(row: dict[str, Any], result: SendResult, now_ms: int, settings: DeliverSettings) -> dict[str, Any]:
    """The row's new state after one send attempt: sent, bounced, retried later, or failed."""
    attempt = row["attempts"] + 1
    state: dict[str, Any] = {
        "id": row["id"],
        "status": "sent",
        "attempts": attempt,
        "next_attempt_at": row["next_attempt_at"],
        "last_error": None,
        "sent_at": None,
        "updated_at": now_ms,
    }
    outcome = classify(result)
    if outcome == "sent":
        state["sent_at"] = now_ms
        return state
    state["last_error"] = f"{result.code} {result.response}".strip()
    if outcome == "bounced":
        # A refused address bounces (and is suppressed); refused content fails this message only.
        state["status"] = "bounced" if result.about_recipient else "failed"
    elif attempt >= settings.max_attempts:
        state["status"] = "failed"
    else:
        base_ms, max_ms = int(settings.retry_base_seconds * 1000), int(settings.retry_max_seconds * 1000)
        state["status"] = "queued"
        state["next_attempt_at"] = now_ms + retry_delay_ms(row["idempotency_key"], attempt, base_ms, max_ms)
    return state


def attempt_entry(row: dict[str, Any], state: dict[str, Any], result: SendResult | None, worker: str) -> dict[str, Any]:
    """The attempts-log row for one outcome ('deferred' when it will be retried)."""
    status = state["status"]
    return {
        "outbox_id": row["id"],
        "attempt": state["attempts"],
        "result": "deferred" if status == "queued" else status,
        "smtp_code": result.code if result else None,
        "smtp_response": result.response[:1000] if result else state.get("last_error"),
        "worker": worker,
        "at": state["updated_at"],
    }


SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it, during a send round (Python's default: 0.005)."""

_switching = threading.Lock()
_responsive = 0
_responsive_restore: list[float] = []


@contextlib.contextmanager
def responsive_threads() -> Iterator[None]:
    """A shorter GIL switch interval while a send round runs (process-wide, restored after the last round).

    The round's database work runs in a thread beside the event loop.  Every
    socket call of the loop lets go of the GIL, and while the database thread
    runs Python code the loop then waits up to the switch interval to get it
    back, once per SMTP command of each of the 16 connections: at the default
    5 ms the connections sat idle for much of every claim and record.
    """
    global _responsive
    with _switching:
        if not _responsive:
            _responsive_restore.append(sys.getswitchinterval())
            sys.setswitchinterval(min(SWITCH_INTERVAL, _responsive_restore[-1]))
        _responsive += 1
    try:
        yield
    finally:
        with _switching:
            _responsive -= 1
            if not _responsive:
                sys.setswitchinterval(_responsive_restore.pop())


def blocks(reason: str | None, kind: str) -> bool:
    """Whether a suppression stops this kind of mail: unsubscribes stop marketing only."""
    return reason is not None and (reason != "unsubscribe" or kind == "marketing")


@dataclass
class Batch:
    """One claimed batch split into what is settled already and what goes out."""

    settled: list[dict[str, Any]]
    logged: list[dict[str, Any]]
    ready: list[dict[str, Any]]


@dataclass
class _Claimed:
    """A claimed batch on its way through the connections: rows, envelopes, and the replies so far."""

    rows: list[dict[str, Any]]
    envelopes: list[Envelope]
    broken: list[dict[str, Any]]
    results: list[SendResult] = field(init=False)
    left: int = field(init=False)

    def __post_init__(self) -> None:
        self.results = [INTERRUPTED] * len(self.envelopes)
        self.left = len(self.envelopes)

    def outcomes(self) -> tuple[list[dict[str, Any]], list[SendResult], list[dict[str, Any]]]:
        """What ``Sender._record`` takes: the sent rows, their replies, the rows that failed to build."""
        return self.rows, self.results, self.broken


class Sender:
    """Claims and sends outbox rows through one transport; one per worker process."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: DeliverSettings,
        transport: Transport,
        *,
        secret: str,
        signer: Signer | None = None,
        worker_id: str | None = None,
        on_recorded: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.store, self.clock, self.settings, self.transport = store, clock, settings, transport
        self.on_recorded = on_recorded
        """Called with (rows, new states) after each batch's outcomes commit (tracking writes events)."""
        self.secret, self.signer = secret, signer
        self.worker_id = worker_id or new_worker_id()
        self.limiter = RateLimiter(
            settings.rate_per_second, settings.burst, settings.domain_rate_per_second, settings.domain_burst
        )
        # One loop for the life of the sender, so pooled SMTP connections survive between rounds.
        self.loop = asyncio.new_event_loop()

    def run_round(self) -> int:
        """Send batches until nothing is due or the round's budget is spent; return rows handled."""
        with responsive_threads():
            return self.loop.run_until_complete(self._round())

    async def _round(self) -> int:
        """Send claimed batches through one worker per connection, in claim order, claiming ahead.

        The workers take messages from one queue, oldest batch first, so a batch
        finishes (and is recorded, in a thread) while the next one keeps every
        connection busy; the next claim starts when fewer than ``low_water``
        messages are left, so the connections never wait for the database.  Two
        batches sent side by side would finish together and leave the
        connections idle while the following claim ran.
        """
        queue: deque[tuple[_Claimed, int]] = deque()
        ready = asyncio.Condition()
        low = asyncio.Event()
        recording: list[asyncio.Future[None]] = []
        total, claiming = 0, True
        low_water = max(2 * self.settings.connections, self.settings.batch_size // 2)

        def answered(batch: _Claimed) -> None:
            recording.append(asyncio.ensure_future(asyncio.to_thread(self._record, *batch.outcomes())))

        async def claim() -> None:
            nonlocal total, claiming
            try:
                for _ in range(self.settings.max_batches_per_round):
                    claimed = await asyncio.to_thread(self.claim_batch)
                    if claimed is None:
                        break
                    total += claimed[0]
                    batch = _Claimed(*claimed[1:])
                    if not batch.envelopes:  # nothing to send (every row broken): record at once
                        answered(batch)
                    async with ready:
                        queue.extend((batch, i) for i in range(len(batch.envelopes)))
                        ready.notify_all()
                    while len(queue) >= low_water:
                        low.clear()
                        await low.wait()
            finally:  # whatever happened, the workers finish what is queued and stop
                claiming = False
                async with ready:
                    ready.notify_all()

        async def work() -> None:
            while True:
                async with ready:
                    await ready.wait_for(lambda: bool(queue) or not claiming)
                    if not queue:
                        return
                    batch, index = queue.popleft()
                if len(queue) < low_water:
                    low.set()
                batch.results[index] = await self._send_one(batch.envelopes[index])
                batch.left -= 1
                if not batch.left:
                    answered(batch)

        workers = [asyncio.ensure_future(work()) for _ in range(self.settings.connections)]
        claimer = await asyncio.gather(claim(), return_exceptions=True)
        await asyncio.gather(*workers)  # they never raise: _send_one turns every failure into a result
        outcomes = [*claimer, *await asyncio.gather(*recording, return_exceptions=True)]
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return total

    def claim_batch(self) -> tuple[int, list[dict[str, Any]], list[Envelope], list[dict[str, Any]]] | None:
        """Claim and screen one batch: (rows claimed, rows to send, their envelopes, rows that failed to build)."""
        now_ms = to_ms(self.clock.now())
        limit = min(self.settings.batch_size, self.limiter.overall.available(now_ms))
        if limit <= 0:
            return None
        with self.store.begin() as conn:
            rows = queries.claim_due(conn, self.worker_id, now_ms, int(self.settings.lease_seconds * 1000), limit)
            if not rows:
                return None
            batch = self._screen(conn, rows, now_ms)
            queries.finish_claimed(conn, self.worker_id, batch.settled)
            queries.log_attempts(conn, batch.logged)
        ready, broken = self._prepare_all(batch.ready)
        return len(rows), [row for row, _ in ready], [envelope for _, envelope in ready], broken

    def _screen(self, conn: Any, rows: list[dict[str, Any]], now_ms: int) -> Batch:
        """Settle suppressed rows and pace the rest; checked right before sending, every time."""
        suppressed = queries.suppressed_among(conn, [r["recipient"] for r in rows])
        batch = Batch([], [], [])
        for row in rows:
            if row["interrupted"]:  # its last worker died mid-send: log that try before this one
                state = {"status": "interrupted", "attempts": row["attempts"], "updated_at": now_ms}
                batch.logged.append(attempt_entry(row, state, INTERRUPTED, self.worker_id))
            reason = suppressed.get(row["recipient"])
            if blocks(reason, row["kind"]):
                state = {**_unchanged(row, now_ms), "status": "suppressed", "last_error": f"suppressed: {reason}"}
                batch.settled.append(state)
                batch.logged.append(attempt_entry(row, state, None, self.worker_id))
            elif wait := self.limiter.take(domain_of(row["recipient"]), now_ms):
                batch.settled.append({**_unchanged(row, now_ms), "status": "queued", "next_attempt_at": now_ms + wait})
            else:
                batch.ready.append(row)
        return batch

    def _prepare_all(
        self, rows: list[dict[str, Any]]
    ) -> tuple[list[tuple[dict[str, Any], Envelope]], list[dict[str, Any]]]:
        """Build each row's wire bytes; a row that cannot be built fails alone (no retry fixes it)."""
        ready, broken = [], []
        for row in rows:
            try:
                ready.append((row, self.prepare(row)))
            except Exception as error:
                log.exception("cannot prepare outbox row %s", row["id"])
                now_ms = to_ms(self.clock.now())
                message = f"cannot build the message: {type(error).__name__}: {error}"
                broken.append(
                    {
                        **_unchanged(row, now_ms),
                        "status": "failed",
                        "attempts": row["attempts"] + 1,
                        "last_error": message,
                    }
                )
        return ready, broken

    async def _send_one(self, envelope: Envelope) -> SendResult:
        try:
            return await self.transport.send(envelope)
        except Exception as error:  # an unexpected transport bug: retry later, keep going
            log.exception("transport failed sending %s", envelope.message_id)
            return SendResult(0, f"{type(error).__name__}: {error}")

    def prepare(self, row: dict[str, Any]) -> Envelope:
        """The wire bytes of a row: as queued when finished then, else with its headers added now; DKIM."""
        if is_finished(row):
            data = bytes(row["mime"])
        else:
            data = finish(
                row, row["id"], secret=self.secret, base_url=self.settings.base_url, domain=self.settings.domain
            )
        if self.signer is not None:
            data = dkim_sign(data, self.signer)
        return Envelope(self.settings.sender or row["sender"], row["recipient"], data, row["message_id"])

    def _record(self, rows: list[dict[str, Any]], results: list[SendResult], broken: list[dict[str, Any]]) -> None:
        now_ms = to_ms(self.clock.now())
        states = [decide(row, result, now_ms, self.settings) for row, result in zip(rows, results, strict=True)]
        logged = [attempt_entry(r, s, res, self.worker_id) for r, s, res in zip(rows, states, results, strict=True)]
        logged += [attempt_entry({"id": s["id"]}, s, None, self.worker_id) for s in broken]
        bounced = [
            {"address": row["recipient"], "reason": "bounce", "detail": state["last_error"], "created_at": now_ms}
            for row, state in zip(rows, states, strict=True)
            if state["status"] == "bounced"
        ]
        if not logged:
            return
        with self.store.begin() as conn:
            queries.finish_claimed(conn, self.worker_id, states + broken)
            queries.log_attempts(conn, logged)
            queries.add_suppressions(conn, bounced)
        if self.on_recorded is not None:
            try:
                self.on_recorded(rows, states)
            except Exception:  # the mail is sent and recorded; a failed write-back must not resend it
                log.exception("could not record delivery events for %d rows", len(rows))

    def close(self) -> None:
        """Close pooled connections and the event loop."""
        closer = getattr(self.transport, "close", None)
        if closer is not None:
            self.loop.run_until_complete(closer())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


def _unchanged(row: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"],
        "last_error": None,
        "sent_at": None,
        "updated_at": now_ms,
    }
