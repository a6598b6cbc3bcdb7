"""Stream consumers: Redis Streams and NATS JetStream, each reading Segment messages.

Both follow the same rules: a batch is validated, the good messages are stored
in one ingest transaction, and only after that commit are they acknowledged;
a poison message (not JSON, not a valid Segment message) is written to a
dead-letter stream or subject with its reason, acknowledged, and consumption
goes on.  A database failure acknowledges nothing: the batch is read again
after a restart (Redis: this consumer's pending entries first; NATS: after the
ack wait), and message ids make the replay harmless.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tailormail.clock import to_ms
from tailormail.errors import ConfigError, ValidationError
from tailormail.ingest.messages import Message, parse_message
from tailormail.ingest.pipeline import Ingestor
from tailormail.ingest.readahead import read_ahead

DATA_FIELD = "data"
"""The Redis stream entry field holding the message's JSON."""


Decoded = tuple[list[tuple[Any, Any]], list[Any], list[Message | str]]
"""A batch of stream entries, their data fields and what each decoded to."""


@dataclass
class ConsumeResult:
    """What a consumer did until it stopped."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead: int = 0

    def add(self, other: ConsumeResult) -> None:
        """Add another batch's counts."""
        self.received += other.received
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.dead += other.dead


def decode(data: bytes | str | None, received_ms: int, max_bytes: int | None) -> Message | str:
    """The validated message in ``data``, or the reason it is poison."""
    if data is None:
        return f"no {DATA_FIELD!r} field"
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"not valid JSON: {exc}"
    try:
        return parse_message(raw, received_ms=received_ms, max_bytes=max_bytes)
    except ValidationError as exc:
        return f"invalid message: {exc.message}" + (f" (field {exc.field})" if exc.field else "")


def commit(ingestor: Ingestor, decoded: Sequence[Message | str]) -> ConsumeResult:
    """Store the good messages of a batch in one transaction; count the poison ones."""
    good = [m for m in decoded if isinstance(m, Message)]
    stored = ingestor.ingest(good) if good else None
    return ConsumeResult(
        received=len(decoded),
        stored=stored.stored if stored else 0,
        duplicates=stored.duplicates if stored else 0,
        dead=len(decoded) - len(good),
    )


@dataclass(frozen=True)
class Until:
    """When a consumer loop ends: a stop event, a message budget, or the stream going idle (tests, backfills)."""

    stop: threading.Event | None = None
    max_messages: int | None = None
    idle: bool = False
    """End as soon as a read finds nothing, instead of waiting for more."""

    def done(self, seen: int) -> bool:
        """True when the loop should end after ``seen`` messages."""
        return bool(self.stop and self.stop.is_set()) or (self.max_messages is not None and seen >= self.max_messages)

    def wanted(self, seen: int, batch: int) -> int:
        """How many messages to ask for next."""
        return batch if self.max_messages is None else max(1, min(batch, self.max_messages - seen))


@dataclass
class RedisStreamConsumer:
    """A Redis Streams consumer-group member that ingests Segment messages."""

    ingestor: Ingestor
    client: Any
    """A ``redis.Redis`` client."""
    stream: str
    group: str = "tailormail"
    consumer: str = "tailormail-1"
    dead_letter: str = ""
    """Dead-letter stream (default: ``<stream>:dead``)."""
    batch: int = 500
    block_ms: int = 1000
    max_bytes: int | None = None

    def ensure_group(self) -> None:
        """Create the stream and the group (from the beginning) when missing."""
        import redis

        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self, until: Until | None = None) -> ConsumeResult:
        """Consume until stopped: this consumer's pending entries first, then new ones.

        The next batch is read and validated on a thread while this one is stored;
        it stays pending (unacknowledged) until its own commit, so a crash loses nothing.
        """
        self.ensure_group()
        total = ConsumeResult()
        for entries, datas, decoded in read_ahead(self._decoded(self._reads(until or Until()))):
            total.add(self._handle(entries, datas, decoded))
        return total

    def _reads(self, ending: Until) -> Iterator[list[tuple[Any, Any]]]:
        """Batches of entries as XREADGROUP gives them, until ``ending`` says stop."""
        read = 0
        after: Any = "0"  # drain entries delivered before a crash and never acknowledged, then new ones (">")
        while not ending.done(read):
            reply = self.client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: after},
                count=ending.wanted(read, self.batch),
                block=None if after != ">" or ending.idle else self.block_ms,
            )
            entries = reply[0][1] if reply else []
            if not entries:
                if after != ">":
                    after = ">"
                    continue
                if ending.idle:
                    return
                continue
            if after != ">":
                # Pending entries stay pending until acknowledged: read on from the last one, not from 0 again.
                after = entries[-1][0]
            read += len(entries)
            yield entries

    def _decoded(self, batches: Iterator[list[tuple[Any, Any]]]) -> Iterator[Decoded]:
        """Each batch with its data fields and their validated messages (or reasons they are poison)."""
        for entries in batches:
            now_ms = to_ms(self.ingestor.clock.now())
            datas = [_field(fields) for _, fields in entries]
            yield entries, datas, [decode(data, now_ms, self.max_bytes) for data in datas]

    def _handle(self, entries: list[tuple[Any, Any]], datas: list[Any], decoded: list[Message | str]) -> ConsumeResult:
        """Store a batch's good messages, dead-letter the poison ones, then acknowledge them all."""
        result = commit(self.ingestor, decoded)
        pipe = self.client.pipeline(transaction=False)
        if result.dead:
            dead = self.dead_letter or f"{self.stream}:dead"
            for (entry_id, _), data, item in zip(entries, datas, decoded, strict=True):
                if isinstance(item, str):
                    pipe.xadd(dead, {"data": data or b"", "reason": item, "source_id": entry_id, "stream": self.stream})
        pipe.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])
        pipe.execute()
        return result


_DATA_KEYS = (DATA_FIELD.encode(), DATA_FIELD)
"""The data field as a reply gives it: bytes, or text with ``decode_responses``."""


def _field(fields: dict[Any, Any] | None) -> Any:
    """The entry's data (None for an entry deleted while pending, or one without it)."""
    if not fields:
        return None
    for key in _DATA_KEYS:
        if key in fields:
            return fields[key]
    return None


@dataclass
class NatsConsumer:
    """A NATS JetStream durable pull consumer that ingests Segment messages."""

    ingestor: Ingestor
    servers: str
    subject: str
    durable: str = "tailormail"
    stream: str = ""
    """The JetStream stream holding ``subject`` (default: found by subject)."""
    dead_letter: str = ""
    """Dead-letter subject (default: ``<subject>.dead``); a stream is created for it when none captures it."""
    batch: int = 500
    fetch_timeout: float = 1.0
    max_bytes: int | None = None

    def run(self, until: Until | None = None) -> ConsumeResult:
        """Consume until stopped (a blocking wrapper around the asyncio client)."""
        return asyncio.run(self.run_async(until or Until()))

    async def run_async(self, ending: Until) -> ConsumeResult:
        """Fetch, commit, then ack, batch after batch."""
        import nats
        from nats.errors import TimeoutError as FetchTimeout

        connection = await nats.connect(self.servers, connect_timeout=5, max_reconnect_attempts=3)
        try:
            js = connection.jetstream()
            stream = self.stream or await _stream_of(js, self.subject)
            dead = self.dead_letter or f"{self.subject}.dead"
            await _ensure_dead_letter_stream(js, stream, dead)
            sub = await js.pull_subscribe(self.subject, durable=self.durable, stream=stream)
            total = ConsumeResult()
            while not ending.done(total.received):
                try:
                    msgs = await sub.fetch(ending.wanted(total.received, self.batch), timeout=self.fetch_timeout)
                except FetchTimeout:
                    if ending.idle:
                        break
                    continue
                total.add(await self._handle(js, msgs, dead))
            return total
        finally:
            # Acks are plain publishes: flush them, then close (drain waits on the pull subscription).
            await connection.flush()
            await connection.close()

    async def _handle(self, js: Any, msgs: list[Any], dead: str) -> ConsumeResult:
        now_ms = to_ms(self.ingestor.clock.now())
        decoded = [decode(m.data, now_ms, self.max_bytes) for m in msgs]
        result = await asyncio.to_thread(commit, self.ingestor, decoded)
        for msg, item in zip(msgs, decoded, strict=True):
            if isinstance(item, str):
                await js.publish(
                    dead, msg.data, headers={"Tailormail-Reason": item[:500], "Tailormail-Subject": msg.subject}
                )
        await asyncio.gather(*(msg.ack() for msg in msgs))
        return result


async def _stream_of(js: Any, subject: str) -> str:
    from nats.js.errors import NotFoundError

    try:
        return str(await js.find_stream_name_by_subject(subject))
    except NotFoundError:
        raise ConfigError(
            f"no JetStream stream captures subject {subject!r}",
            hint=f"create one, e.g. `nats stream add EVENTS --subjects '{subject}'`, or pass --stream",
        ) from None


async def _ensure_dead_letter_stream(js: Any, stream: str, dead: str) -> None:
    from nats.js.errors import NotFoundError

    try:
        await js.find_stream_name_by_subject(dead)
    except NotFoundError:
        await js.add_stream(name=f"{stream}_DEAD".replace(".", "_"), subjects=[dead])
