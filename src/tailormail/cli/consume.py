"""`tailormail consume`: ingest Segment messages from Redis Streams or NATS JetStream."""

from __future__ import annotations

import signal
import socket
import threading
from typing import Annotated

import typer

from tailormail.cli.common import WorkspaceOption, console, runtime_for
from tailormail.ingest.streams import ConsumeResult, NatsConsumer, RedisStreamConsumer, Until

app = typer.Typer(help="Consume Segment messages from a stream (acknowledged after commit).", no_args_is_help=True)

MaxOption = Annotated[
    int | None, typer.Option("--max", help="Stop after this many messages (default: run until stopped).")
]
IdleOption = Annotated[bool, typer.Option("--until-idle", help="Stop when the stream has nothing more.")]


def _stop_event() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def _report(total: ConsumeResult) -> None:
    console.print(
        f"consumed {total.received:,}: stored {total.stored:,}, duplicates {total.duplicates:,}, "
        f"dead-lettered {total.dead:,}"
    )


@app.command("redis")
def redis_stream(
    stream: Annotated[str, typer.Option("--stream", help="Stream key to read.")],
    group: Annotated[str, typer.Option("--group", help="Consumer group.")] = "tailormail",
    consumer: Annotated[str, typer.Option(help="This consumer's name in the group.")] = socket.gethostname(),
    url: Annotated[str, typer.Option(envvar="TAILORMAIL_REDIS_URL", help="Redis URL.")] = "redis://127.0.0.1:6379/0",
    dead_letter: Annotated[str, typer.Option(help="Dead-letter stream (default: STREAM:dead).")] = "",
    batch: Annotated[int, typer.Option(help="Entries per read and per transaction.")] = 500,
    max_messages: MaxOption = None,
    until_idle: IdleOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Read a Redis stream as a consumer group; each entry's `data` field is one Segment message."""
    import redis

    with runtime_for(workspace) as rt:
        client = redis.Redis.from_url(url)
        reader = RedisStreamConsumer(
            rt.ingestor,
            client,
            stream,
            group=group,
            consumer=consumer,
            dead_letter=dead_letter,
            batch=batch,
            max_bytes=rt.settings.limits.max_message_bytes,
        )
        console.print(f"Consuming {stream} as {group}/{consumer}; Ctrl-C to stop.")
        _report(reader.run(Until(_stop_event(), max_messages, until_idle)))


@app.command("nats")
def nats_subject(
    subject: Annotated[str, typer.Option("--subject", help="Subject to consume.")],
    durable: Annotated[str, typer.Option(help="Durable consumer name.")] = "tailormail",
    stream: Annotated[str, typer.Option(help="JetStream stream (default: the one capturing the subject).")] = "",
    servers: Annotated[
        str, typer.Option(envvar="TAILORMAIL_NATS_URL", help="NATS server URL.")
    ] = "nats://127.0.0.1:4222",
    dead_letter: Annotated[str, typer.Option(help="Dead-letter subject (default: SUBJECT.dead).")] = "",
    batch: Annotated[int, typer.Option(help="Messages per fetch and per transaction.")] = 500,
    max_messages: MaxOption = None,
    until_idle: IdleOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Consume a NATS JetStream subject with a durable consumer; each message body is one Segment message."""
    with runtime_for(workspace) as rt:
        reader = NatsConsumer(
            rt.ingestor,
            servers,
            subject,
            durable=durable,
            stream=stream,
            dead_letter=dead_letter,
            batch=batch,
            max_bytes=rt.settings.limits.max_message_bytes,
        )
        console.print(f"Consuming {subject} as durable {durable}; Ctrl-C to stop.")
        _report(reader.run(Until(_stop_event(), max_messages, until_idle)))
