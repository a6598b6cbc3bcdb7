"""Pacing: token-bucket rate limits and retry backoff, pure functions of time in ms."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; rate 0 means unlimited."""

    rate: float
    burst: int
    tokens: float = -1.0
    updated_ms: int = 0

    def _refill(self, now_ms: int) -> None:
        if self.tokens < 0:
            self.tokens, self.updated_ms = float(self.burst), now_ms
        elapsed = max(0, now_ms - self.updated_ms)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate / 1000.0)
        self.updated_ms = max(self.updated_ms, now_ms)

    def available(self, now_ms: int) -> int:
        """Whole tokens available now (a large number when unlimited)."""
        if self.rate <= 0:
            return 1 << 30
        self._refill(now_ms)
        return int(self.tokens)

    def take(self, now_ms: int) -> int:
        """Take one token: 0 when granted, else the ms to wait until one is there."""
        if self.rate <= 0:
            return 0
        self._refill(now_ms)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0
        return max(1, int((1.0 - self.tokens) * 1000.0 / self.rate + 0.999))


@dataclass
class RateLimiter:
    """A global bucket and one bucket per recipient domain."""

    rate: float
    burst: int
    domain_rate: float
    domain_burst: int
    overall: TokenBucket = field(init=False)
    domains: dict[str, TokenBucket] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.overall = TokenBucket(self.rate, self.burst)

    def take(self, domain: str, now_ms: int) -> int:
        """Take a token for one message to ``domain``: 0 when it may go now, else ms to wait."""
        bucket = self.domains.setdefault(domain, TokenBucket(self.domain_rate, self.domain_burst))
        wait = bucket.take(now_ms)
        if wait:
            return wait
        wait = self.overall.take(now_ms)
        if wait:  # give the domain token back: this message did not go
            bucket.tokens += 1.0 if bucket.rate > 0 else 0.0
        return wait


def jitter_fraction(key: str, attempt: int) -> float:
    """A fraction in [0, 1) fixed by the key and attempt: deterministic, yet spread across messages."""
    digest = hashlib.sha256(f"{key}#{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def retry_delay_ms(key: str, attempt: int, base_ms: int, max_ms: int) -> int:
    """The wait before retry number ``attempt`` (1-based): exponential, capped, with equal jitter.

    Half the exponential delay is fixed and half is jitter, so retries after a
    shared outage do not all hit the server in the same second.
    """
    ceiling = min(max_ms, base_ms * 2 ** max(0, attempt - 1))
    half = ceiling / 2
    return int(half + half * jitter_fraction(key, attempt))
