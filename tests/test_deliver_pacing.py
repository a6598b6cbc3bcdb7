"""Pure delivery logic, as tables: reply classes, outcomes, backoff, token buckets, headers."""

from __future__ import annotations

import pytest

from tailormail.deliver.headers import has_message_id, prepend_headers, unsubscribe_headers, with_crlf
from tailormail.deliver.outbox import message_id_for, normalize_address
from tailormail.deliver.pacing import RateLimiter, TokenBucket, jitter_fraction, retry_delay_ms
from tailormail.deliver.sender import blocks, decide
from tailormail.deliver.settings import DeliverSettings
from tailormail.deliver.transport import SendResult, classify
from tailormail.errors import ValidationError

CLASSIFY_CASES = [
    ("accepted", 250, "sent"),
    ("mailbox full, try later", 452, "deferred"),
    ("greylisted", 451, "deferred"),
    ("no reply (timeout, refused connection)", 0, "deferred"),
    ("no such user", 550, "bounced"),
    ("policy rejection", 554, "bounced"),
]


@pytest.mark.parametrize(("description", "code", "expected"), CLASSIFY_CASES)
def test_classify(description: str, code: int, expected: str) -> None:
    assert classify(SendResult(code, description)) == expected


SETTINGS = DeliverSettings(max_attempts=3, retry_base_seconds=60, retry_max_seconds=600)
ROW = {"id": 1, "idempotency_key": "k", "attempts": 0, "next_attempt_at": 0}
DECIDE_CASES = [
    # description, attempts before, reply code, status, sent_at set, retry window (ms) or None
    ("first try accepted", 0, 250, "sent", True, None),
    ("first temporary failure waits 30-60 s", 0, 451, "queued", False, (30_000, 60_000)),
    ("second temporary failure waits 60-120 s", 1, 451, "queued", False, (60_000, 120_000)),
    ("timeout is temporary too", 1, 0, "queued", False, (60_000, 120_000)),
    ("temporary failures run out", 2, 451, "failed", False, None),
    ("permanent failure bounces at once", 0, 550, "bounced", False, None),
    ("content refused at DATA fails, no bounce", 0, -554, "failed", False, None),
]


@pytest.mark.parametrize(("description", "before", "code", "status", "sent", "window"), DECIDE_CASES)
def test_decide(
    description: str, before: int, code: int, status: str, sent: bool, window: tuple[int, int] | None
) -> None:
    result = SendResult(abs(code), "reply", about_recipient=code >= 0)
    state = decide({**ROW, "attempts": before}, result, 1_000_000, SETTINGS)
    assert state["status"] == status and state["attempts"] == before + 1
    assert (state["sent_at"] == 1_000_000) is sent
    assert (state["last_error"] is None) is (status == "sent")
    if window:
        assert window[0] <= state["next_attempt_at"] - 1_000_000 < window[1]


def test_backoff_is_exponential_capped_and_its_jitter_is_deterministic_per_key() -> None:
    delays = [retry_delay_ms("campaign:a/profile:1", n, 1000, 60_000) for n in range(1, 10)]
    assert delays == [retry_delay_ms("campaign:a/profile:1", n, 1000, 60_000) for n in range(1, 10)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(60_000, 1000 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    spread = {retry_delay_ms(f"k{i}", 3, 1000, 60_000) for i in range(50)}
    assert len(spread) > 40, "different keys must not retry in lockstep"
    assert all(0 <= jitter_fraction(f"k{i}", 1) < 1 for i in range(100))


BUCKET_CASES = [
    # description, rate/s, burst, take times (ms), expected waits
    ("unlimited never waits", 0, 1, [0, 0, 0], [0, 0, 0]),
    ("burst then wait", 10, 2, [0, 0, 0], [0, 0, 100]),
    ("refills with time", 10, 2, [0, 0, 0, 100, 100], [0, 0, 100, 0, 100]),
    ("refill never exceeds burst", 1, 1, [0, 10_000, 10_000], [0, 0, 1000]),
]


@pytest.mark.parametrize(("description", "rate", "burst", "times", "waits"), BUCKET_CASES)
def test_token_bucket(description: str, rate: float, burst: int, times: list[int], waits: list[int]) -> None:
    bucket = TokenBucket(rate, burst)
    assert [bucket.take(t) for t in times] == waits


def test_rate_limiter_limits_each_domain_and_the_total() -> None:
    limiter = RateLimiter(rate=3, burst=3, domain_rate=1, domain_burst=1)
    assert limiter.take("gmail.com", 0) == 0
    assert limiter.take("gmail.com", 0) == 1000  # the domain bucket is empty
    assert limiter.take("yahoo.com", 0) == 0
    assert limiter.take("aol.com", 0) == 0
    assert limiter.take("web.de", 0) > 0  # the global bucket is empty
    assert limiter.take("web.de", 400) == 0  # ... and refills
    assert limiter.overall.available(400) == 0


SUPPRESSION_CASES = [
    ("not suppressed", None, "marketing", False),
    ("unsubscribed: no marketing", "unsubscribe", "marketing", True),
    ("unsubscribed: receipts still go", "unsubscribe", "transactional", False),
    ("bounced: nothing goes", "bounce", "transactional", True),
    ("complaint: nothing goes", "complaint", "marketing", True),
    ("manual: nothing goes", "manual", "transactional", True),
]


@pytest.mark.parametrize(("description", "reason", "kind", "blocked"), SUPPRESSION_CASES)
def test_which_suppressions_block_which_mail(description: str, reason: str | None, kind: str, blocked: bool) -> None:
    assert blocks(reason, kind) is blocked


ADDRESS_CASES = [
    ("plain", "ann@example.com", "ann@example.com"),
    ("case and spaces", "  Ann@Example.COM ", "ann@example.com"),
    ("no at", "ann.example.com", None),
    ("header injection", "ann@example.com\r\nBcc: x@y.z", None),
    ("no dot in domain", "ann@localhost", None),
    ("two addresses", "a@b.c, d@e.f", None),
]


@pytest.mark.parametrize(("description", "raw", "expected"), ADDRESS_CASES)
def test_normalize_address(description: str, raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ValidationError) as error:
            normalize_address(raw)
        assert error.value.field == "to" and "not an email address" in error.value.message
    else:
        assert normalize_address(raw) == expected


def test_message_id_depends_only_on_key_and_domain() -> None:
    first = message_id_for("run:1/node:a/attempt:1", "shop.example")
    assert first == message_id_for("run:1/node:a/attempt:1", "shop.example")
    assert first != message_id_for("run:1/node:a/attempt:2", "shop.example")
    assert first.startswith("<") and first.endswith("@shop.example>")


def test_header_helpers() -> None:
    mime = with_crlf(b"From: a@b.c\nSubject: x\n\nbody mentions\nMessage-ID: <not-a-header>\n")
    assert b"\n" not in mime.replace(b"\r\n", b"")
    assert not has_message_id(mime), "a Message-ID line in the body is not a header"
    assert has_message_id(prepend_headers(mime, [("Message-ID", "<1@b.c>")]))
    headers = unsubscribe_headers("https://t.example/", "b.c", "TOKEN")
    assert headers[0] == ("List-Unsubscribe", "<https://t.example/u/TOKEN>,\r\n <mailto:unsubscribe@b.c?subject=TOKEN>")
    assert headers[1] == ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    with pytest.raises(ValueError, match="line break"):
        prepend_headers(mime, [("Subject", "x\r\nBcc: evil@example.com")])
