"""Posting journey webhook steps: at least once, signed, never to a private address unless allowed.

A webhook step only writes a row to the webhook outbox inside its step's
transaction.  This worker task claims due rows with a lease, posts each one
outside any transaction through the guarded outbound client (HMAC-signed
body, the resolved address checked and pinned), with the step's idempotency
key in the ``Idempotency-Key`` header so a receiver can drop the duplicate a
crash between posting and recording may cause, and records the result:
sent, retried later with exponential backoff and jitter (network errors,
408/429/5xx), or failed (any other answer, a refused address, attempts used up).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import httpx

from tailormail.config import Settings
from tailormail.deliver.webhooks import AddressPolicy, Backoff, make_client, post_signed
from tailormail.errors import ConfigError
from tailormail.store import Store
from tailormail.store import webhooks as q

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class WebhookSettings:
    """``[journeys]`` settings of webhook steps."""

    secret: str
    """The HMAC key receivers verify the signature with."""
    policy: AddressPolicy
    """Private, loopback and link-local addresses are refused unless allowed here."""
    max_attempts: int = 8
    """Posts that keep failing temporarily give up after this many tries."""
    backoff: Backoff = field(default_factory=lambda: Backoff(base=30.0, cap=3600.0))
    timeout_seconds: float = 10.0
    lease_ms: int = 60_000
    """A killed worker's claimed posts are taken over after this."""


def webhook_settings(settings: Settings) -> WebhookSettings:
    """Read ``[journeys]``: webhook_secret_env, webhook_allow_private, webhook_allowed_networks, ..."""
    section = settings.section("journeys")
    secret = settings.secret
    env = section.get("webhook_secret_env")
    if env:
        secret = os.environ.get(str(env), "")
        if not secret:
            raise ConfigError(
                f"[journeys] webhook_secret_env names {env!r}, which is not set", hint=f"export {env}=..."
            )
    networks = section.get("webhook_allowed_networks", [])
    if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
        raise ConfigError("[journeys] webhook_allowed_networks must be a list of CIDRs", hint='e.g. ["10.1.0.0/16"]')
    policy = AddressPolicy(bool(section.get("webhook_allow_private", False)), tuple(networks))
    attempts = int(section.get("webhook_max_attempts", 8))
    base = float(section.get("webhook_retry_base_seconds", 30.0))
    return WebhookSettings(secret, policy, max_attempts=max(1, attempts), backoff=Backoff(base=base, cap=3600.0))


@dataclass
class WebhookPoster:
    """Claims due webhook posts and makes them (one per worker process; keeps its HTTP client)."""

    config: WebhookSettings
    worker: str
    client: httpx.Client | None = None

    def run(self, store: Store, now_ms: int, limit: int = 50) -> int:
        """Post every due row (up to ``limit``); return how many were tried."""
        with store.begin() as conn:
            rows = q.claim_due(conn, self.worker, now_ms, self.config.lease_ms, limit)
        if not rows:
            return 0
        client = self.client or make_client(self.config.policy, timeout=self.config.timeout_seconds)
        self.client = client
        for row in rows:
            self._post(store, client, row, now_ms)
        return len(rows)

    def _post(self, store: Store, client: httpx.Client, row: dict[str, Any], now_ms: int) -> None:
        outcome = post_signed(
            client,
            row["url"],
            row["payload"],
            secret=self.config.secret,
            unix_seconds=now_ms // 1000,
            headers={IDEMPOTENCY_HEADER: row["idempotency_key"]},
        )
        attempts = int(row["attempts"]) + 1  # the claim counted it in the row, not in this copy
        values: dict[str, Any] = {"last_status": outcome.status, "last_error": outcome.error}
        if outcome.ok:
            values.update(status="sent", sent_at=now_ms)
        elif outcome.retryable and attempts < self.config.max_attempts:
            delay_ms = int(self.config.backoff.delay(attempts) * 1000)
            values.update(status="queued", next_attempt_at=now_ms + delay_ms)
        else:
            values.update(status="failed")
        with store.begin() as conn:
            q.finish(conn, self.worker, row["id"], now_ms, **values)

    def close(self) -> None:
        """Close the HTTP client's connections."""
        if self.client is not None:
            self.client.close()
            self.client = None
