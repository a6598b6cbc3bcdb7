"""Write-behind recording of tracking hits: answer once the token verifies, record in batches.

With ``[track].batch_ms`` above 0 the pixel and click endpoints verify the
token, hand the hit to a HitBuffer and answer at once; a background thread
records what gathered every ``batch_ms`` (or at ``max_batch`` hits) through
ingest in ONE call, so the lookups, hooks and commit are paid per batch, not
per hit.  Every hit is appended to this process's journal (``track.journal``)
before it is answered, so a killed process loses none: the next one to start
records what its journal held.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from tailormail.runtime import Runtime
from tailormail.track.hits import Hit, record_hits
from tailormail.track.journal import Journal, orphans, read_hits

log = logging.getLogger("tailormail.track")

MAX_PENDING = 200_000
"""Hits kept while the database refuses writes; beyond this the oldest are dropped (and logged), not memory."""


class HitBuffer:
    """Verified hits waiting to be recorded, and the thread that records them."""

    def __init__(self, runtime: Runtime, delay_s: float, max_batch: int = 2000) -> None:
        self.runtime, self.delay_s, self.max_batch = runtime, delay_s, max_batch
        self._pending: list[Hit] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._journal = Journal(Path(runtime.settings.workspace))
        self._recording: list[Path] = []
        """Rotated journal files whose hits are being recorded (deleted once they are)."""
        for path in orphans(Path(runtime.settings.workspace)):  # a crashed process's accepted hits
            if path != self._journal.path:
                self._pending.extend(read_hits(path))
                self._recording.append(path)

    def add(self, hit: Hit) -> None:
        """Journal and queue a hit (starts the recording thread on first use)."""
        with self._lock:
            self._journal.append(hit)
            self._pending.append(hit)
            full = len(self._pending) >= self.max_batch
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="track-hits", daemon=True)
                self._thread.start()
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Record everything pending now; return how many events were written."""
        with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            self._recording.append(self._journal.rotate())
        try:
            written = record_hits(self.runtime, batch)
        except Exception:  # the database is busy or down: keep the hits (and their journals) for the next round
            log.exception("could not record %d tracking hits; retrying", len(batch))
            with self._lock:
                self._pending = (batch + self._pending)[-MAX_PENDING:]
            return 0
        with self._lock:
            done, self._recording = self._recording, []
        for path in done:
            path.unlink(missing_ok=True)
        return written

    def close(self) -> None:
        """Stop the thread and record what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.flush()
        if not self._pending:
            self._journal.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.delay_s)
            self._wake.clear()
            self.flush()
