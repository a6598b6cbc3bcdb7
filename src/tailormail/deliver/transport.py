"""The mail transport boundary: one async ``send`` per message, and the Maildir transport.

Why async: the SMTP transport keeps a pool of connections busy at once (one
slow server reply must not idle the others), which asyncio does in one thread
with aiosmtplib; a synchronous Maildir write fits the same signature trivially.
A transport never raises for a delivery outcome: it returns the SMTP reply
(code 0 when there was none: a refused connection, a timeout), and the sender
decides what that means (``classify``).
"""

from __future__ import annotations

import mailbox
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_LINE_END = re.compile(rb"\r\n")


@dataclass(frozen=True)
class Envelope:
    """One message for one recipient, exactly as it goes on the wire (CRLF line ends)."""

    sender: str
    recipient: str
    data: bytes
    message_id: str


@dataclass(frozen=True)
class SendResult:
    """The server's answer: an SMTP reply code (0: no reply at all) and its text."""

    code: int
    response: str
    about_recipient: bool = True
    """False when the server refused the message itself (at DATA), not the address."""


class Transport(Protocol):
    """Anything that can hand one message to the next hop."""

    async def send(self, envelope: Envelope) -> SendResult:
        """Deliver one envelope; return the reply (never raise for a delivery outcome)."""
        ...


def classify(result: SendResult) -> str:
    """The outcome of a reply: sent (2xx), bounced (5xx) or deferred (4xx or no reply: retry)."""
    if 200 <= result.code < 300:
        return "sent"
    if 500 <= result.code < 600:
        return "bounced"
    return "deferred"


class MaildirTransport:
    """Delivers into a Maildir folder (the embedded default): open it with any mail reader."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.maildir = mailbox.Maildir(path, create=True)

    async def send(self, envelope: Envelope) -> SendResult:
        """Write the message as a new file, with Return-Path and Delivered-To like a local MDA."""
        top = f"Return-Path: <{envelope.sender}>\nDelivered-To: {envelope.recipient}\n".encode("ascii")
        try:
            key = self.maildir.add(top + _LINE_END.sub(b"\n", envelope.data))
        except OSError as error:  # a full disk is temporary: retry later
            return SendResult(0, f"maildir: {error}")
        return SendResult(250, f"delivered to {self.path.name}/new/{key}")
