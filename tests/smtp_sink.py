"""A recording SMTP sink (aiosmtpd) for tests and benchmarks, run as its own process.

    python tests/smtp_sink.py RECORD_FILE [--reject-prefix PREFIX:CODE ...]

Listens on a free loopback port and prints it on the first line of stdout.
Every accepted message appends one line per recipient to RECORD_FILE:
``<message-id>\\t<recipient>``.  A recipient starting with PREFIX is refused
with CODE (to exercise bounces and retries).  SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

MESSAGE_ID = re.compile(rb"(?im)^message-id:\s*(<[^>\r\n]*>)")


class Recorder:
    """An aiosmtpd handler that appends (Message-ID, recipient) lines to a file."""

    def __init__(self, path: str, rejects: dict[str, int]) -> None:
        self.out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life
        self.rejects = rejects

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any) -> str:
        for prefix, code in self.rejects.items():
            if address.startswith(prefix):
                return f"{code} {'no such user' if code >= 500 else 'try again later'}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        match = MESSAGE_ID.search(content)
        message_id = match.group(1).decode() if match else "-"
        self.out.write("".join(f"{message_id}\t{rcpt}\n" for rcpt in envelope.rcpt_tos))
        self.out.flush()
        return "250 OK queued"


async def serve(path: str, rejects: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    handler = Recorder(path, rejects)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.local", data_size_limit=10 * 2**20), "127.0.0.1", 0
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await stop.wait()
    server.close()
    handler.out.close()


def main(argv: list[str]) -> None:
    rejects: dict[str, int] = {}
    for i, arg in enumerate(argv):
        if arg == "--reject-prefix":
            prefix, _, code = argv[i + 1].rpartition(":")
            rejects[prefix] = int(code)
    asyncio.run(serve(argv[0], rejects))


if __name__ == "__main__":
    main(sys.argv[1:])
