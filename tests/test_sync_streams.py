"""Stream consumers against the real Redis and NATS JetStream servers on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import uuid
from typing import Any

import pytest

from conftest import IN_CI
from tailormail.ingest.streams import NatsConsumer, RedisStreamConsumer, Until
from tailormail.runtime import Runtime
from tailormail.store import events as event_q

REDIS_URL = "redis://127.0.0.1:6379/15"
NATS_URL = "nats://127.0.0.1:4222"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def need(port: int, what: str) -> None:
    if not _listening(port):
        if IN_CI:
            pytest.fail(f"CI must provide {what} on 127.0.0.1:{port}")
        pytest.skip(f"{what} is not running on 127.0.0.1:{port}")


def track(n: int) -> str:
    return json.dumps(
        {"type": "track", "event": "purchase", "userId": f"u{n % 3}", "messageId": f"m{n}", "properties": {"total": n}}
    )


POISON = [b"{not json", json.dumps({"type": "track", "userId": "u1"}).encode()]  # bad JSON; track without event


def stored(rt: Runtime) -> int:
    with rt.store.read() as conn:
        return sum(n for _, event, n, _ in event_q.event_counts(conn) if event == "purchase")


@pytest.fixture
def redis_client() -> Any:
    need(6379, "Redis")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def test_redis_consumer_acks_after_commit_and_dead_letters_poison(runtime: Runtime, redis_client: Any) -> None:
    stream = f"events-{uuid.uuid4().hex[:8]}"
    try:
        for n in range(10):
            redis_client.xadd(stream, {"data": track(n)})
        for bad in POISON:
            redis_client.xadd(stream, {"data": bad})
        redis_client.xadd(stream, {"other": "no data field"})
        redis_client.xadd(stream, {"data": track(3)})  # a duplicate messageId
        consumer = RedisStreamConsumer(runtime.ingestor, redis_client, stream, group="g", batch=4)
        result = consumer.run(Until(stop=threading.Event(), idle=True))
        assert (result.received, result.stored, result.duplicates, result.dead) == (14, 10, 1, 3)
        assert stored(runtime) == 10
        assert redis_client.xpending(stream, "g")["pending"] == 0
        dead = redis_client.xrange(f"{stream}:dead")
        reasons = [fields[b"reason"].decode() for _, fields in dead]
        assert len(dead) == 3 and reasons[0].startswith("not valid JSON")
        assert "track needs a non-empty string event" in reasons[1] and "no 'data' field" in reasons[2]
        assert dead[0][1][b"data"] == POISON[0]
    finally:
        redis_client.delete(stream, f"{stream}:dead")


@pytest.mark.parametrize(
    ("entries", "batch", "first_run", "pending", "restart_batch"),
    [
        (5, 500, Until(max_messages=5), (5,), 500),
        # Several batches: the one that failed and the one read ahead stay pending; read back in
        # smaller batches, each must still come exactly once.
        (7, 3, Until(idle=True), (3, 6), 2),
    ],
)
def test_redis_entries_are_not_acked_when_the_commit_fails_and_are_redelivered(
    runtime: Runtime, redis_client: Any, entries: int, batch: int, first_run: Until, pending: tuple[int, ...],
    restart_batch: int,
) -> None:  # fmt: skip
    stream = f"events-{uuid.uuid4().hex[:8]}"
    try:
        for n in range(entries):
            redis_client.xadd(stream, {"data": track(n)})

        def broken_hook(conn: Any, events: Any, now_ms: int) -> None:
            raise RuntimeError("database went away")

        runtime.ingestor.hooks.append(broken_hook)
        consumer = RedisStreamConsumer(runtime.ingestor, redis_client, stream, group="g", consumer="c1", batch=batch)
        with pytest.raises(RuntimeError):
            consumer.run(first_run)
        assert stored(runtime) == 0 and redis_client.xpending(stream, "g")["pending"] in pending
        runtime.ingestor.hooks.remove(broken_hook)
        consumer.batch = restart_batch
        result = consumer.run(Until(idle=True))  # a restart reads its own pending entries first
        assert (result.received, result.stored, result.duplicates) == (entries, entries, 0)
        assert stored(runtime) == entries and redis_client.xpending(stream, "g")["pending"] == 0
    finally:
        redis_client.delete(stream)


def test_redis_consumer_stops_on_its_budget_and_on_the_stop_event(runtime: Runtime, redis_client: Any) -> None:
    stream = f"events-{uuid.uuid4().hex[:8]}"
    try:
        for n in range(10):
            redis_client.xadd(stream, {"data": track(n)})
        consumer = RedisStreamConsumer(runtime.ingestor, redis_client, stream, batch=3)
        assert consumer.run(Until(max_messages=4)).received == 4
        stop = threading.Event()
        stop.set()
        assert consumer.run(Until(stop=stop)).received == 0
        assert consumer.run(Until(idle=True)).received == 6
    finally:
        redis_client.delete(stream)


@pytest.fixture
def jetstream() -> Any:
    need(4222, "NATS")
    import nats

    name = f"TEST_{uuid.uuid4().hex[:8].upper()}"
    subject = f"events.{name.lower()}"

    async def setup() -> None:
        nc = await nats.connect(NATS_URL)
        await nc.jetstream().add_stream(name=name, subjects=[subject])
        await nc.close()

    async def teardown() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for stream in (name, f"{name}_DEAD"):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        await nc.close()

    asyncio.run(setup())
    yield name, subject
    asyncio.run(teardown())


def publish(subject: str, bodies: list[bytes]) -> None:
    import nats

    async def go() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for body in bodies:
            await js.publish(subject, body, timeout=10)  # a loaded CI machine acks slowly
        await nc.close()

    asyncio.run(go())


def dead_letters(subject: str, stream: str) -> list[tuple[bytes, str]]:
    import nats

    async def go() -> list[tuple[bytes, str]]:
        nc = await nats.connect(NATS_URL)
        sub = await nc.jetstream().pull_subscribe(f"{subject}.dead", durable="check", stream=f"{stream}_DEAD")
        msgs = await sub.fetch(len(POISON), timeout=10)
        await nc.close()
        return [(m.data, (m.headers or {}).get("Tailormail-Reason", "")) for m in msgs]

    return asyncio.run(go())


def test_nats_durable_consumer_acks_after_commit_and_dead_letters_poison(runtime: Runtime, jetstream: Any) -> None:
    stream, subject = jetstream
    publish(subject, [track(n).encode() for n in range(8)] + POISON)
    consumer = NatsConsumer(runtime.ingestor, NATS_URL, subject, durable="tm", batch=3, fetch_timeout=2.0)
    result = consumer.run(Until(idle=True))
    assert (result.received, result.stored, result.dead) == (10, 8, 2)
    assert stored(runtime) == 8
    dead = dead_letters(subject, stream)
    assert [body for body, _ in dead] == POISON and dead[0][1].startswith("not valid JSON")
    # Everything was acknowledged: the durable consumer has nothing more to give.
    publish(subject, [track(100).encode()])
    again = consumer.run(Until(idle=True))
    assert (again.received, again.stored) == (1, 1)


def test_nats_consumer_needs_a_stream_for_the_subject(runtime: Runtime) -> None:
    need(4222, "NATS")
    from tailormail.errors import ConfigError

    with pytest.raises(ConfigError, match="no JetStream stream captures"):
        NatsConsumer(runtime.ingestor, NATS_URL, f"nowhere.{uuid.uuid4().hex}").run(Until(max_messages=1))
