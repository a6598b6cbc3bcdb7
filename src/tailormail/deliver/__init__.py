"""Delivery: the outbox, transports (SMTP, Maildir), DKIM, unsubscribe headers, suppression, pacing.

Other domains call ``enqueue`` inside their own transaction; the worker's
``deliver_task`` claims due rows and sends them exactly once per idempotency key
(a redelivery after a crash carries the same Message-ID).
"""

from tailormail.deliver.outbox import Email, enqueue, enqueue_many, message_id_for
from tailormail.deliver.service import deliver_task, open_sender
from tailormail.deliver.transport import Envelope, SendResult, Transport

__all__ = [
    "Email",
    "Envelope",
    "SendResult",
    "Transport",
    "deliver_task",
    "enqueue",
    "enqueue_many",
    "message_id_for",
    "open_sender",
]
