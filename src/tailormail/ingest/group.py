"""Group commit: ingest calls that arrive together share one transaction.

The HTTP API receives batches from many clients at once, and the store takes
one writer at a time.  Each batch used to wait for the write lock and then pay
a whole transaction for its hundred events: BEGIN, the hooks' reads that every
batch makes however small it is (segment states, paused journeys, the rules'
queries), and a commit that writes the pages those share.  Here a caller that
finds a transaction under way queues its validated messages instead; when that
transaction has committed, the first caller in the queue leads the next one,
which stores everything queued meanwhile.

What each caller is promised does not change:
* it returns only after the transaction holding its messages has committed
  (acknowledged only after the commit);
* a group that fails is rolled back whole and tried again caller by caller,
  so a batch that breaks fails alone and nobody's batch is half-written;
* messages are validated in the caller's own thread first, so a malformed
  batch is refused with its own field and index and never joins a group.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import OperationalError

from tailormail.clock import to_ms
from tailormail.errors import StoreError, TailormailError
from tailormail.ingest.messages import Message
from tailormail.ingest.pipeline import Ingestor, IngestResult, parse_raw

GROUP_MAX_EVENTS = 5_000
"""Most messages one group transaction takes (a caller's batch always goes whole into one)."""


class GroupAborted(TailormailError):
    """The transaction that held a caller's messages was interrupted before it committed; nothing was stored."""

    code = "ingest_interrupted"


@dataclass(eq=False)
class _Ticket:
    """One caller's messages, waiting for the transaction that stores them."""

    messages: Sequence[Message]
    done: threading.Event = field(default_factory=threading.Event)
    """Set when ``result`` or ``error`` is there, or when this caller is to lead the next group."""
    lead: bool = False
    result: IngestResult | None = None
    error: BaseException | None = None


class GroupCommit:
    """An ``Ingestor`` whose concurrent callers share transactions (leader and followers, no thread of its own)."""

    def __init__(self, ingestor: Ingestor, *, max_events: int = GROUP_MAX_EVENTS) -> None:
        self.ingestor = ingestor
        self.max_events = max_events
        self._lock = threading.Lock()
        self._queue: deque[_Ticket] = deque()
        self._busy = False
        """True while a leader is storing a group or has been chosen to; the queue is empty when False."""

    def ingest_raw(
        self, raws: Sequence[Any], *, sent_at: str | None = None, max_bytes: int | None = None
    ) -> IngestResult:
        """Validate the raw messages here, then store them with whatever else has arrived meanwhile."""
        received_ms = to_ms(self.ingestor.clock.now())
        return self.ingest(parse_raw(raws, received_ms, sent_at=sent_at, max_bytes=max_bytes))

    def ingest(self, messages: Sequence[Message]) -> IngestResult:
        """Store validated messages; returns once the transaction holding them has committed."""
        ticket = _Ticket(messages)
        with self._lock:
            self._queue.append(ticket)
            if not self._busy:
                self._busy = ticket.lead = True
        if not ticket.lead:
            ticket.done.wait()  # woken with the outcome, or to lead the group that holds this ticket
        if ticket.lead:
            self._lead()
        if ticket.error is not None:
            raise ticket.error
        assert ticket.result is not None
        return ticket.result

    def _lead(self) -> None:
        """Store the group at the head of the queue (this leader's ticket first), then pass the lead on."""
        with self._lock:
            group = self._take()
        try:
            _store_group(self.ingestor, group)
        finally:
            for ticket in group:
                if ticket.result is None and ticket.error is None:
                    ticket.error = GroupAborted(
                        "the ingest transaction was interrupted before it committed; nothing was stored",
                        hint="send the batch again",
                    )
                ticket.done.set()
            with self._lock:
                if self._queue:
                    following = self._queue[0]
                    following.lead = True
                    following.done.set()
                else:
                    self._busy = False

    def _take(self) -> list[_Ticket]:
        group = [self._queue.popleft()]
        size = len(group[0].messages)
        while self._queue and size + len(self._queue[0].messages) <= self.max_events:
            ticket = self._queue.popleft()
            size += len(ticket.messages)
            group.append(ticket)
        return group


def _store_group(ingestor: Ingestor, group: list[_Ticket]) -> None:
    """One transaction for the whole group; if it fails, one per ticket, so only a breaking batch fails."""
    try:
        stored = ingestor.ingest([m for ticket in group for m in ticket.messages])
    except Exception as error:
        if len(group) == 1 or _about_the_database(error):
            for ticket in group:
                ticket.error = error
            return
        for ticket in group:
            try:
                ticket.result = ingestor.ingest(ticket.messages)
            except Exception as alone:
                ticket.error = alone
        return
    if len(group) == 1:
        group[0].result = stored
        return
    events_of = {id(event.message): event for event in stored.events}
    for ticket in group:
        events = [events_of[id(m)] for m in ticket.messages if id(m) in events_of]
        received = len(ticket.messages)
        ticket.result = IngestResult(received, len(events), received - len(events), events)


def _about_the_database(error: Exception) -> bool:
    """Whether a failure is the database's own (unreachable, locked, full): no batch alone would fare better.

    Those are the drivers' OperationalErrors; constraint and data errors
    (a batch's value the database refuses) are worth a try caller by caller.
    """
    cause = error.__cause__ if isinstance(error, StoreError) else error
    return isinstance(cause, OperationalError | sqlite3.OperationalError)
