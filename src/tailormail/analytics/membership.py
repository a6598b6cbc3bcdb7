"""Which segments a person was in when an email went out, for metrics by segment.

Membership changes are recorded (``segment_changes``: entered or exited, and
when), so the segments at send time are read back from that history.  Where
the history says nothing about a person and a segment (members from before
changes were recorded), the current membership counts when it began before
the send.  An email counts once in every segment its recipient was in, so the
rows of a by-segment table add up to more than the total; people in no
segment are grouped as ``(none)``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from tailormail.store import analytics as q

NO_SEGMENT = "(none)"
"""The group of emails whose recipient was in no segment when it was sent."""


@dataclass
class Membership:
    """One person's membership history: per segment, its changes by time, and the current entry."""

    changes: dict[str, list[tuple[int, bool]]] = field(default_factory=lambda: defaultdict(list))
    since: dict[str, int] = field(default_factory=dict)

    def segments_at(self, at: int) -> list[str]:
        """The segments this person was in at ``at`` (ms), sorted; [NO_SEGMENT] when none."""
        found = [name for name in sorted(set(self.changes) | set(self.since)) if self._member(name, at)]
        return found or [NO_SEGMENT]

    def _member(self, name: str, at: int) -> bool:
        history = self.changes.get(name, [])
        i = bisect.bisect_right(history, (at, True))
        if i > 0:
            return history[i - 1][1]  # the last change before the send decides
        if history:
            return not history[0][1]  # only later changes: an exit means they were in before
        since = self.since.get(name)
        return since is not None and since <= at


def memberships(conn: Connection, profile_ids: Iterable[int]) -> dict[int, Membership]:
    """The membership history of these people (everyone else has none)."""
    wanted = set(profile_ids)
    out: dict[int, Membership] = defaultdict(Membership)
    for pid, segment, change, at in q.segment_history(conn):
        if pid in wanted:
            out[pid].changes[segment].append((at, change == "entered"))
    for pid, segment, since in q.segment_members_now(conn):
        if pid in wanted:
            out[pid].since[segment] = since
    return out
