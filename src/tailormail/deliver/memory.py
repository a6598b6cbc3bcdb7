"""An in-memory transport, ONLY for unit tests of the layers above the transport.

Not selectable in tailormail.toml: real sending is SMTP or Maildir.
"""

from __future__ import annotations

from tailormail.deliver.transport import Envelope, SendResult


class MemoryTransport:
    """Keeps every envelope; answers with a scripted reply per recipient (default 250)."""

    def __init__(self, replies: dict[str, list[SendResult]] | None = None) -> None:
        self.sent: list[Envelope] = []
        self.replies = replies or {}

    async def send(self, envelope: Envelope) -> SendResult:
        """Record the envelope; pop the next scripted reply for its recipient."""
        self.sent.append(envelope)
        script = self.replies.get(envelope.recipient)
        return script.pop(0) if script else SendResult(250, "ok")
