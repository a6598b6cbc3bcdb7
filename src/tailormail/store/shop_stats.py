"""Named queries that summarise a shop: orders, revenue per day, buyers, places.

They back the demo's summary and report; analytics builds richer ones later.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, func, select

from tailormail.store.schema import events, profiles

DAY_MS = 86_400_000


def daily_totals(conn: Connection, event: str) -> list[tuple[int, int, float]]:
    """(day start in ms, count, revenue) of ``event`` per UTC day, oldest first."""
    day = (events.c.ts // DAY_MS).label("day")  # floor division: "/" is true division in SQLAlchemy 2
    stmt = (
        select(day, func.count(), func.coalesce(func.sum(events.c.revenue), 0.0))
        .where(events.c.event == event)
        .group_by(day)
        .order_by(day)
    )
    return [(int(d) * DAY_MS, int(n), float(r)) for d, n, r in conn.execute(stmt)]


def distinct_people(conn: Connection, event: str) -> int:
    """How many profiles did ``event`` at least once."""
    stmt = select(func.count(func.distinct(events.c.profile_id))).where(events.c.event == event)
    return int(conn.execute(stmt).scalar_one())


def event_properties(conn: Connection, event: str, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """The properties of every ``event``, in id order, in pages of ``batch``."""
    last = 0
    while True:
        rows = conn.execute(
            select(events.c.id, events.c.properties)
            .where(events.c.event == event, events.c.id > last)
            .order_by(events.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        for _id, properties in rows:
            yield properties or {}
        last = rows[-1][0]


def profiles_by_trait(conn: Connection, trait: str, limit: int = 10) -> list[tuple[str | None, int]]:
    """The most common values of one top-level trait, with their profile counts."""
    value = profiles.c.traits[trait].as_string().label("value")
    n = func.count().label("n")
    stmt = select(value, n).group_by(value).order_by(n.desc(), value).limit(limit)
    return [(v, int(c)) for v, c in conn.execute(stmt)]
