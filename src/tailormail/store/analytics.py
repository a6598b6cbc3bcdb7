"""Named queries analytics reads: the outbox's sends and the email and goal events."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, case, func, literal, select, union_all

from tailormail.store.schema import events, profiles
from tailormail.store.schema_deliver import outbox

SEND_COLUMNS = (
    "idempotency_key",
    "profile_id",
    "status",
    "campaign",
    "journey",
    "node",
    "template",
    "variant",
    "sent_at",
    "created_at",
)


def sends_by_key(conn: Connection, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Outbox rows (without their bytes) by idempotency key; unknown keys are left out."""
    columns = [outbox.c.id, *(outbox.c[name] for name in SEND_COLUMNS)]
    wanted, found = sorted(set(keys)), {}
    for start in range(0, len(wanted), 500):
        stmt = select(*columns).where(outbox.c.idempotency_key.in_(wanted[start : start + 500]))
        found.update({r["idempotency_key"]: dict(r) for r in conn.execute(stmt).mappings()})
    return found


def sends(conn: Connection, batch: int = 20_000) -> Iterator[dict[str, Any]]:
    """Every outbox row (without its bytes), in id order."""
    columns = [outbox.c.id, *(outbox.c[name] for name in SEND_COLUMNS)]
    keys = [c.name for c in columns]
    last = 0
    while True:
        rows = conn.execute(select(*columns).where(outbox.c.id > last).order_by(outbox.c.id).limit(batch)).all()
        if not rows:
            return
        yield from (dict(zip(keys, r, strict=True)) for r in rows)  # plain tuples: mappings cost per row
        last = rows[-1][0]


def delivered_by_template(
    conn: Connection, *, campaign: str | None = None, journey: str | None = None
) -> dict[str, int]:
    """Delivered (sent, not bounced) emails per template, optionally of one campaign or journey."""
    stmt = select(outbox.c.template, func.count()).where(outbox.c.status == "sent").group_by(outbox.c.template)
    if campaign is not None:
        stmt = stmt.where(outbox.c.campaign == campaign)
    if journey is not None:
        stmt = stmt.where(outbox.c.journey == journey)
    return {str(t): int(n) for t, n in conn.execute(stmt) if t is not None}


def segment_history(conn: Connection, profile_ids: Sequence[int] | None = None) -> Iterator[tuple[int, str, str, int]]:
    """(profile id, segment, 'entered' or 'exited', at) of every recorded membership change, oldest first."""
    from tailormail.store.schema_segments import segment_changes as c

    stmt = select(c.c.profile_id, c.c.segment, c.c.change, c.c.at).order_by(c.c.at, c.c.id)
    if profile_ids is not None:
        stmt = stmt.where(c.c.profile_id.in_(list(profile_ids)))
    for p, s, change, at in conn.execute(stmt):
        yield int(p), str(s), str(change), int(at)


def segment_members_now(conn: Connection) -> Iterator[tuple[int, str, int]]:
    """(profile id, segment, member since) of the current membership."""
    from tailormail.store.schema_segments import segment_members as m

    for p, s, since in conn.execute(select(m.c.profile_id, m.c.segment, m.c.since)):
        yield int(p), str(s), int(since)


def split_assignments(conn: Connection) -> Iterator[tuple[str, str, int, str, int]]:
    """(journey, split node, profile id, arm, at) of every journey split assignment, oldest first."""
    from tailormail.store.schema_journeys import journey_log as log

    stmt = (
        select(log.c.journey, log.c.node, log.c.profile_id, log.c.detail, log.c.at)
        .where(log.c.action == "assigned")
        .order_by(log.c.at, log.c.id)
    )
    for journey, node, pid, detail, at in conn.execute(stmt):
        yield str(journey), str(node), int(pid), str((detail or {}).get("arm")), int(at)


def events_named(conn: Connection, names: Sequence[str], batch: int = 5_000) -> Iterator[dict[str, Any]]:
    """Events with these names (profile, time, properties, revenue), in id order."""
    columns = [events.c.id, events.c.profile_id, events.c.event, events.c.ts, events.c.properties, events.c.revenue]
    keys = [c.name for c in columns]
    for chunk in _ids_named(conn, names, batch):
        rows = conn.execute(select(*columns).where(events.c.id.in_(chunk)).order_by(events.c.id))
        yield from (dict(zip(keys, r, strict=True)) for r in rows)


def goal_events(
    conn: Connection,
    names: Sequence[str],
    batch: int = 5_000,
    *,
    since: int | None = None,
    until: int | None = None,
) -> Iterator[tuple[str, int, int, float]]:
    """(event, profile id, time, revenue) of events with these names, in id order (no properties read).

    ``since`` and ``until`` (ms, inclusive) bound the time, so callers that can only use a window read just it.
    """
    columns = [events.c.id, events.c.event, events.c.profile_id, events.c.ts, events.c.revenue]
    for chunk in _ids_named(conn, names, batch, since=since, until=until):
        stmt = select(*columns).where(events.c.id.in_(chunk)).order_by(events.c.id)
        for _, name, pid, ts, revenue in conn.execute(stmt):
            yield str(name), int(pid), int(ts), float(revenue or 0.0)


def _ids_named(
    conn: Connection, names: Sequence[str], batch: int, *, since: int | None = None, until: int | None = None
) -> Iterator[list[int]]:
    """The ids of events with these names (in the time range), sorted, in chunks of ``batch``.

    The ids come from the (event, ts, profile_id) index alone; paging the table itself by id
    would read every event row (and its JSON) to find the few with these names.
    """
    stmt = select(events.c.id).where(events.c.event.in_(list(names)))
    if since is not None:
        stmt = stmt.where(events.c.ts >= since)
    if until is not None:
        stmt = stmt.where(events.c.ts <= until)
    ids = sorted(int(i) for (i,) in conn.execute(stmt))
    for start in range(0, len(ids), batch):
        yield ids[start : start + batch]


def cohort_matrix(
    conn: Connection,
    *,
    cohort_event: str | None,
    activity_event: str | None,
    origin_ms: int,
    period_ms: int,
    profile_ids: Sequence[int] | None = None,
) -> tuple[list[tuple[int, int, int]], dict[int, int]]:
    """((cohort period, periods since, distinct people active) for every cohort and age, people per cohort).

    A person's cohort is the period of their first ``cohort_event`` (None: their
    first event of any kind); activity is ``activity_event`` (None: any event)
    at or after that first event.  One statement: the cells and the sizes come
    from the same per-person periods.
    """
    if cohort_event is not None and activity_event is not None and cohort_event != activity_event:
        return _cohort_cells_by_time(conn, cohort_event, activity_event, origin_ms, period_ms, profile_ids)
    # Activity in the cohort's own period always includes the cohort event itself here, so comparing
    # periods (not times) gives the same cells as "at or after the first event" with one pass over events.
    period = ((events.c.ts - origin_ms) // period_ms).label("period")
    act = select(events.c.profile_id, period).distinct()
    if activity_event is not None:
        act = act.where(events.c.event == activity_event)
    if profile_ids is not None:
        act = act.where(events.c.profile_id.in_(list(profile_ids)))
    a = act.cte("act")
    if cohort_event == activity_event:  # the same events: each person's first period is their cohort
        firsts = select(a.c.profile_id, func.min(a.c.period).label("cohort")).group_by(a.c.profile_id)
    else:  # cohorts by the first cohort_event (None: any event)
        firsts = select(events.c.profile_id, func.min(period).label("cohort")).group_by(events.c.profile_id)
        if cohort_event is not None:
            firsts = firsts.where(events.c.event == cohort_event)
        if profile_ids is not None:
            firsts = firsts.where(events.c.profile_id.in_(list(profile_ids)))
    f = firsts.cte("firsts")
    age = (a.c.period - f.c.cohort).label("age")
    cells = (
        select(f.c.cohort, age, func.count())
        .select_from(a.join(f, f.c.profile_id == a.c.profile_id))
        .where(a.c.period >= f.c.cohort)
        .group_by(f.c.cohort, age)
    )
    sizes = select(f.c.cohort, literal(-1).label("age"), func.count()).group_by(f.c.cohort)
    counts, by_cohort = [], {}
    for c, k, n in conn.execute(union_all(cells, sizes)):
        if int(k) < 0:
            by_cohort[int(c)] = int(n)
        else:
            counts.append((int(c), int(k), int(n)))
    return counts, by_cohort


def _cohort_cells_by_time(
    conn: Connection,
    cohort_event: str,
    activity_event: str,
    origin_ms: int,
    period_ms: int,
    profile_ids: Sequence[int] | None,
) -> tuple[list[tuple[int, int, int]], dict[int, int]]:
    """The cells when activity is another event than the cohort's: activity must come after the first one."""
    f = _firsts(cohort_event, profile_ids)
    cohort = ((f.c.first_ts - origin_ms) // period_ms).label("cohort")
    age = (((events.c.ts - origin_ms) // period_ms) - (f.c.first_ts - origin_ms) // period_ms).label("age")
    stmt = (
        select(cohort, age, func.count(func.distinct(events.c.profile_id)))
        .select_from(events.join(f, f.c.profile_id == events.c.profile_id))
        .where(events.c.ts >= f.c.first_ts, events.c.event == activity_event)
        .group_by(cohort, age)
    )
    counts = [(int(c), int(a), int(n)) for c, a, n in conn.execute(stmt)]
    sizes = {int(c): int(n) for c, n in conn.execute(select(cohort, func.count()).group_by(cohort))}
    return counts, sizes


def _firsts(cohort_event: str | None, profile_ids: Sequence[int] | None) -> Any:
    """Each person's first event (of ``cohort_event`` when given) as a subquery (profile_id, first_ts)."""
    firsts = select(events.c.profile_id, func.min(events.c.ts).label("first_ts")).group_by(events.c.profile_id)
    if cohort_event is not None:
        firsts = firsts.where(events.c.event == cohort_event)
    if profile_ids is not None:
        firsts = firsts.where(events.c.profile_id.in_(list(profile_ids)))
    return firsts.subquery()


def last_events_before_goal(
    conn: Connection, names: Sequence[str], goal: str, *, window: int
) -> list[tuple[tuple[str, ...], bool, int]]:
    """(events, converted, people): how many people share each sequence of last ``window`` events before the goal.

    A person's sequence is their last ``window`` events among ``names`` before
    their first ``goal`` (or until now when they never reached it), oldest
    first.  Each event becomes one character and each person one short string
    in the database, so only the distinct sequences come back (a few thousand
    for a million people), not every event.
    """
    codes = {name: chr(0x41 + i) for i, name in enumerate(dict.fromkeys(names))}
    by_code = {c: name for name, c in codes.items()}
    firsts = select(events.c.profile_id, func.min(events.c.ts).label("goal_ts")).where(events.c.event == goal)
    g = firsts.group_by(events.c.profile_id).subquery()
    inner = (
        select(
            events.c.profile_id,
            events.c.ts,
            events.c.id,
            case(codes, value=events.c.event).label("code"),
            case((g.c.goal_ts.is_not(None), 1), else_=0).label("converted"),
        )
        .select_from(events.outerjoin(g, g.c.profile_id == events.c.profile_id))
        .where(events.c.event.in_(list(codes)), (g.c.goal_ts.is_(None)) | (events.c.ts < g.c.goal_ts))
    )
    if conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 44):
        # No ORDER BY inside aggregates before SQLite 3.44: the subquery's order (newest first per person)
        # feeds group_concat, as SQLite keeps it for a GROUP BY on the same leading key (tests check it).
        rows = inner.order_by(events.c.profile_id, events.c.ts.desc(), events.c.id.desc()).subquery()
        newest_first: Any = func.group_concat(rows.c.code, "")
    else:
        rows = inner.subquery()
        newest_first = func.aggregate_strings(rows.c.code, "").aggregate_order_by(rows.c.ts.desc(), rows.c.id.desc())
    person = (
        select(func.substr(newest_first, 1, window).label("seq"), func.max(rows.c.converted).label("converted"))
        .group_by(rows.c.profile_id)
        .subquery()
    )
    stmt = select(person.c.seq, person.c.converted, func.count()).group_by(person.c.seq, person.c.converted)
    return [(tuple(by_code[c] for c in reversed(seq)), bool(done), int(n)) for seq, done, n in conn.execute(stmt)]


def first_times(conn: Connection, name: str) -> dict[int, int]:
    """Each person's first ``name`` event time."""
    stmt = (
        select(events.c.profile_id, func.min(events.c.ts)).where(events.c.event == name).group_by(events.c.profile_id)
    )
    return {int(p): int(t) for p, t in conn.execute(stmt)}


def last_seen(conn: Connection) -> dict[int, int]:
    """Each person's last event time."""
    stmt = select(profiles.c.id, profiles.c.last_seen)
    return {int(p): int(t) for p, t in conn.execute(stmt)}


def some_products(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` products of the catalog."""
    from tailormail.store.schema import products

    cols = [products.c.product_id, products.c.name, products.c.category, products.c.price, products.c.image_url]
    return [dict(r) for r in conn.execute(select(*cols).order_by(products.c.product_id).limit(limit)).mappings()]


def profiles_with_email(conn: Connection, limit: int) -> list[tuple[str, int]]:
    """(user id, profile id) of identified people with an email trait, by profile id."""
    from tailormail.store import jsonsql as js

    email = js.text(profiles.c.traits, ("email",), conn.dialect.name)
    stmt = select(profiles.c.user_id, profiles.c.id).where(profiles.c.user_id.is_not(None), email.is_not(None))
    return [(str(u), int(p)) for u, p in conn.execute(stmt.order_by(profiles.c.id).limit(limit))]


def sends_by_step(conn: Connection) -> list[list[Any]]:
    """[journey or campaign, step, status, count] of the outbox."""
    label = func.coalesce(outbox.c.journey, outbox.c.campaign)
    stmt = select(label, outbox.c.node, outbox.c.status, func.count()).group_by(label, outbox.c.node, outbox.c.status)
    return [[j or "", n or "", s, int(c)] for j, n, s, c in conn.execute(stmt.order_by(label, outbox.c.node))]
