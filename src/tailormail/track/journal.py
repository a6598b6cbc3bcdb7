"""An append-only journal of accepted tracking hits, so write-behind recording loses none in a crash.

Each process appends every verified hit as one JSON line to its own file in
``spool/`` before the hit is answered (a write(2) into the page cache: it
survives the process being killed, not the machine losing power).  When a
batch is recorded, its file is rotated away and deleted.  A process that
starts replays every journal no live process holds a lock on; the events'
message ids are derived from the token and the moment, so a hit recorded
before the crash and replayed after it is stored once.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from dataclasses import asdict
from pathlib import Path

from tailormail.track.hits import Hit, Visitor

FOLDER = "spool"
PREFIX = "track-hits-"


class Journal:
    """One process's journal file: append hits, rotate it away on each recorded batch."""

    def __init__(self, workspace: Path) -> None:
        self.folder = workspace / FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fd = self._open(self.path)
        self._rotations = 0

    @staticmethod
    def _open(path: Path) -> int:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # tells other processes this journal is alive
        return fd

    def append(self, hit: Hit) -> None:
        """Write one hit (call under the buffer's lock, so lines never interleave with a rotation)."""
        os.write(self._fd, (json.dumps(asdict(hit), separators=(",", ":")) + "\n").encode())

    def rotate(self) -> Path:
        """Start a new file for the hits that follow; return the closed one (delete it once recorded)."""
        self._rotations += 1
        done = self.path.with_name(f"{self.path.stem}-{self._rotations}.recording")
        os.rename(self.path, done)
        old, self._fd = self._fd, self._open(self.path)
        os.close(old)
        return done

    def close(self) -> None:
        """Close and remove this process's (empty, recorded) journal."""
        os.close(self._fd)
        self.path.unlink(missing_ok=True)


def orphans(workspace: Path) -> list[Path]:
    """Journals of processes that are gone (none holds their lock)."""
    found = []
    for path in sorted((workspace / FOLDER).glob(f"{PREFIX}*")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live process is writing it
        finally:
            os.close(fd)
        found.append(path)
    return found


def read_hits(path: Path) -> list[Hit]:
    """The hits in a journal file (a torn last line, from a crash mid-write, is skipped)."""
    hits = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        hits.append(
            Hit(raw["name"], raw["payload"], raw["extra"], Visitor(**raw["visitor"]), raw["token"], raw["at_ms"])
        )
    return hits
