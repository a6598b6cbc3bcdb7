"""Outbound sync: chosen events and trait changes become signed POSTs to a CRM or warehouse.

The ingest hook writes deliveries into the outbox in the ingest transaction,
so an event is never stored without its deliveries (nor the reverse).  The
worker then sends due deliveries: a short transaction leases a batch, the
POSTs happen outside any transaction, and each outcome is recorded; a
delivery failing ``max_attempts`` times (or refused outright) moves to the
dead-letter list.  Delivery is at least once; receivers deduplicate on the
``Idempotency-Key`` header.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import Connection

from tailormail.clock import from_ms, to_ms
from tailormail.config import Settings
from tailormail.deliver.webhooks import (
    AddressPolicy,
    Backoff,
    RateLimiter,
    Resolver,
    make_client,
    post_signed,
    system_resolver,
)
from tailormail.errors import ConfigError
from tailormail.ingest.messages import Message
from tailormail.ingest.pipeline import IngestHook, StoredEvent
from tailormail.store import profiles as profile_q
from tailormail.store import sync as q
from tailormail.sync.runs import RunLog
from tailormail.sync.sources import Destination, SyncConfig

LEASE = timedelta(minutes=5)
"""A claimed delivery is retried after this if its worker dies mid-send."""

if TYPE_CHECKING:
    from tailormail.runtime import Runtime


def trigger_of(dest: Destination, message: Message) -> str | None:
    """Why ``message`` triggers ``dest`` (an event name or ``trait:NAME``), or None."""
    if message.event and message.type == "track" and message.event in dest.on_events:
        return message.event
    if message.type == "identify" and message.traits:
        for name in dest.on_traits:
            if _has_path(message.traits, name):
                return f"trait:{name}"
    return None


def _has_path(data: dict[str, Any], dotted: str) -> bool:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def outbox_hook(config: SyncConfig) -> IngestHook | None:
    """The ingest hook that enqueues deliveries, or None when no destination is configured."""
    if not config.destinations:
        return None

    def enqueue_deliveries(conn: Connection, stored: list[StoredEvent], now_ms: int) -> None:
        matches = [(d, e, t) for e in stored for d in config.destinations if (t := trigger_of(d, e.message))]
        if not matches:
            return
        traits = profile_q.traits_of(conn, {e.profile_id for _, e, _ in matches})
        rows = [_delivery_row(d, e, t, traits.get(e.profile_id, {}), now_ms) for d, e, t in matches]
        q.enqueue(conn, rows)

    return enqueue_deliveries


def _delivery_row(
    dest: Destination, stored: StoredEvent, trigger: str, traits: dict[str, Any], now_ms: int
) -> dict[str, Any]:
    m = stored.message
    payload: dict[str, Any] = {
        "destination": dest.name,
        "trigger": trigger,
        "messageId": m.message_id,
        "occurredAt": from_ms(m.timestamp).isoformat(),
        "profile": {"userId": m.user_id, "anonymousId": m.anonymous_id, "traits": traits},
    }
    if dest.send == "event":
        payload["event"] = {"type": m.type, "event": m.event, "properties": m.properties, "traits": m.traits}
    return {
        "destination": dest.name,
        "idempotency_key": f"{dest.name}:{m.message_id}",
        "profile_id": stored.profile_id,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now_ms,
        "created_at": now_ms,
    }


@dataclass
class DestinationSender:
    """Sends due deliveries; keeps each destination's rate limiter and HTTP client between rounds."""

    settings: Settings
    config: SyncConfig
    resolver: Resolver = system_resolver
    batch: int = 200
    limiters: dict[str, RateLimiter] = field(default_factory=dict)
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def run(self, runtime: Runtime, now: datetime) -> int:
        """One round over every destination; return how many deliveries were attempted."""
        return sum(self.run_destination(runtime, dest, now) for dest in self.config.destinations)

    def run_destination(self, runtime: Runtime, dest: Destination, now: datetime, trigger: str = "worker") -> int:
        """Send what is due for one destination, within its rate limit; log the round (a manual one always)."""
        claimed = self._claim(runtime, dest, now)
        if not claimed and trigger == "worker":
            return 0  # an idle worker round is not worth a log line
        log = RunLog(runtime.store, runtime.clock, dest.name, "destination", trigger)
        limiter = self.limiters.setdefault(dest.name, RateLimiter(dest.rate_per_second, burst=dest.rate_per_second))
        deferred: list[int] = []
        for delivery in claimed:
            if not limiter.take(now.timestamp()):
                deferred.append(delivery["id"])
                continue
            self._send_one(runtime, dest, delivery, now, log)
        self._release(runtime, deferred, now)
        log.add(skipped=len(deferred))
        log.finish()
        return len(claimed) - len(deferred)

    def close(self) -> None:
        """Close every HTTP client."""
        for client in self.clients.values():
            client.close()

    def _claim(self, runtime: Runtime, dest: Destination, now: datetime) -> list[dict[str, Any]]:
        now_ms = to_ms(now)
        with runtime.store.begin() as conn:
            due = q.due_deliveries(conn, dest.name, now_ms, self.batch)
            for delivery in due:
                q.update_delivery(conn, delivery["id"], next_attempt_at=now_ms + int(LEASE.total_seconds() * 1000))
        return due

    def _release(self, runtime: Runtime, ids: Sequence[int], now: datetime) -> None:
        with runtime.store.begin() as conn:
            for delivery_id in ids:
                q.update_delivery(conn, delivery_id, next_attempt_at=to_ms(now))

    def _send_one(
        self, runtime: Runtime, dest: Destination, delivery: dict[str, Any], now: datetime, log: RunLog
    ) -> None:
        headers = {"Idempotency-Key": delivery["idempotency_key"]}
        outcome = post_signed(
            self._client(dest),
            dest.url,
            delivery["payload"],
            secret=self._secret(dest),
            unix_seconds=int(now.timestamp()),
            headers=headers,
        )
        attempts = delivery["attempts"] + 1
        log.add(read=1)
        if attempts > 1:
            log.retry(f"delivery {delivery['id']}: attempt {attempts}")
        if outcome.ok:
            values: dict[str, Any] = {"status": "sent", "attempts": attempts, "sent_at": to_ms(now), "last_error": None}
            log.add(written=1)
        else:
            dead = not outcome.retryable or attempts >= dest.max_attempts
            wait = Backoff(base=dest.backoff_seconds).delay(attempts)
            values = {
                "status": "dead" if dead else "pending",
                "attempts": attempts,
                "last_error": outcome.error,
                "next_attempt_at": to_ms(now + timedelta(seconds=wait)),
            }
            log.record_error(
                f"{outcome.error}" + (" (dead-lettered)" if dead else f" (retry in {wait:.0f}s)"), delivery["payload"]
            )
        with runtime.store.begin() as conn:
            q.update_delivery(conn, delivery["id"], **values)

    def _client(self, dest: Destination) -> httpx.Client:
        if dest.name not in self.clients:
            allow = self.config.allow_private if dest.allow_private is None else dest.allow_private
            policy = AddressPolicy(allow_private=allow, allowed_networks=dest.allowed_networks)
            self.clients[dest.name] = make_client(policy, timeout=dest.timeout, resolver=self.resolver)
        return self.clients[dest.name]

    def _secret(self, dest: Destination) -> str:
        secret = os.environ.get(dest.secret_env, "") if dest.secret_env else self.settings.secret
        if not secret:
            where = f"environment variable {dest.secret_env}" if dest.secret_env else "the workspace secret"
            raise ConfigError(f"destination {dest.name!r}: {where} is empty", hint="set it to sign deliveries")
        return secret
