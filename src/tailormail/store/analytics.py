"""Named queries analytics reads: the outbox's sends and the email and goal events."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, and_, case, cast, func, literal, select, union_all

from tailormail.store.schema import events, profile_seen, profiles
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


PERIODS_PER_WORD = 62
"""Periods per activity bit mask: a signed 64-bit integer holds 62 bits well clear of its sign."""


def cohort_matrix(
    conn: Connection,
    *,
    cohort_event: str | None,
    activity_event: str | None,
    origin_ms: int,
    period_ms: int,
    first_period: int,
    periods: int,
    profile_ids: Sequence[int] | None = None,
) -> tuple[list[tuple[int, int, int]], dict[int, int]]:
    """((cohort period, periods since, distinct people active), people per cohort) for cohorts from ``first_period``.

    A person's cohort is the period of their first ``cohort_event`` (None: their
    first event of any kind); activity is ``activity_event`` (None: any event)
    at or after that first event.  Only the ``periods`` periods from
    ``first_period`` on are counted (the ones a table shows).
    """
    if cohort_event is not None and activity_event is not None and cohort_event != activity_event:
        return _cohort_cells_by_time(conn, cohort_event, activity_event, origin_ms, period_ms, profile_ids)
    # One pass over events grouped by person, in the order of the (profile_id, event, ts) index, so no sort of
    # every event: each person's cohort and a bit mask of the periods they were active in (sum of DISTINCT
    # bits is their OR).  Activity in the cohort's own period always includes the cohort event itself here, so
    # comparing periods (not times) gives the same cells as "at or after the first event".
    period = (events.c.ts - origin_ms) // period_ms
    same = cohort_event is not None and cohort_event == activity_event  # then only those events are read
    first = events.c.ts if cohort_event is None or same else case((events.c.event == cohort_event, events.c.ts))
    active = [] if activity_event is None or same else [events.c.event == activity_event]
    words = []
    for start in range(0, periods, PERIODS_PER_WORD):
        low, width = first_period + start, min(PERIODS_PER_WORD, periods - start)
        in_range = and_(*active, events.c.ts >= origin_ms + low * period_ms,
                        events.c.ts < origin_ms + (low + width) * period_ms)  # fmt: skip
        bit = literal(1, BigInteger).op("<<")(cast(period - low, Integer))
        words.append((cast(func.sum(case((in_range, bit), else_=0).distinct()), BigInteger).label(f"w{start}"), width))
    person = select(((func.min(first) - origin_ms) // period_ms).label("cohort"), *(w for w, _ in words))
    if same:
        person = person.where(events.c.event == cohort_event)
    if profile_ids is not None:
        person = person.where(events.c.profile_id.in_(list(profile_ids)))
    per = person.group_by(events.c.profile_id).subquery()
    active_per_period = [
        func.sum(per.c[w.name].op(">>")(literal(j, Integer)).op("&")(literal(1, BigInteger)))
        for w, width in words
        for j in range(width)
    ]
    stmt = select(per.c.cohort, func.count(), *active_per_period).where(per.c.cohort.is_not(None))
    counts, by_cohort = [], {}
    for cohort, size, *active_in in conn.execute(stmt.group_by(per.c.cohort)):
        c = int(cohort)
        by_cohort[c] = int(size)
        for j, n in enumerate(active_in):
            if c >= first_period and first_period + j >= c and n:
                counts.append((c, first_period + j - c, int(n)))
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
    if conn.dialect.name == "sqlite":
        stmt = _sequences_by_person(codes, goal, window)
    else:
        stmt = _sequences_by_sort(codes, goal, window)
    return [(tuple(by_code[c] for c in reversed(seq)), bool(done), int(n)) for seq, done, n in conn.execute(stmt)]


def _sequences_by_person(codes: dict[str, str], goal: str, window: int) -> Any:
    """SQLite: (sequence, converted, people), reading each person's last events straight from the index.

    Per person, one descending range of the (profile_id, event, ts) index per
    event name, merged newest first and cut at ``window``: only about
    ``window`` index entries per person are read and nothing is sorted, where
    ordering every event by person and time sorted twenty million rows at a
    million people.  Events always belong to a profile (merges move them,
    erasure deletes them), so the people are the profiles.
    """
    g = events.alias("g")
    goal_ts = select(func.min(g.c.ts)).where(g.c.profile_id == profiles.c.id, g.c.event == goal).scalar_subquery()
    # MATERIALIZED (SQLite 3.35+): each person's goal time and sequence are computed once, not once per
    # reference to them (SQLite would otherwise copy the correlated subqueries into WHERE and GROUP BY).
    people = select(profiles.c.id.label("pid"), goal_ts.label("goal_ts")).cte("people").prefix_with("MATERIALIZED")
    until = func.coalesce(people.c.goal_ts, literal(2**63 - 1, BigInteger))
    arms = [
        select(events.c.ts, events.c.id, literal(code).label("code"))
        .where(events.c.profile_id == people.c.pid, events.c.event == name, events.c.ts < until)
        .correlate(people)
        for name, code in codes.items()
    ]
    merged = union_all(*arms)
    newest = merged.order_by(merged.selected_columns.ts.desc(), merged.selected_columns.id.desc()).limit(window)
    last = newest.subquery()
    # group_concat keeps the order its subquery delivers (newest first; tests check it).
    seq = select(func.group_concat(last.c.code, "")).scalar_subquery().correlate(people)
    person = select(seq.label("seq"), people.c.goal_ts.is_not(None).label("converted"))
    per = person.cte("sequences").prefix_with("MATERIALIZED")
    return (
        select(per.c.seq, per.c.converted, func.count())
        .where(per.c.seq.is_not(None))
        .group_by(per.c.seq, per.c.converted)
    )


def _sequences_by_sort(codes: dict[str, str], goal: str, window: int) -> Any:
    """PostgreSQL: (sequence, converted, people), each person's events ordered inside ``string_agg``."""
    firsts = select(events.c.profile_id, func.min(events.c.ts).label("goal_ts")).where(events.c.event == goal)
    g = firsts.group_by(events.c.profile_id).subquery()
    rows = (
        select(
            events.c.profile_id,
            events.c.ts,
            events.c.id,
            case(codes, value=events.c.event).label("code"),
            case((g.c.goal_ts.is_not(None), 1), else_=0).label("converted"),
        )
        .select_from(events.outerjoin(g, g.c.profile_id == events.c.profile_id))
        .where(events.c.event.in_(list(codes)), (g.c.goal_ts.is_(None)) | (events.c.ts < g.c.goal_ts))
        .subquery()
    )
    newest_first = func.aggregate_strings(rows.c.code, "").aggregate_order_by(rows.c.ts.desc(), rows.c.id.desc())
    person = (
        select(func.substr(newest_first, 1, window).label("seq"), func.max(rows.c.converted).label("converted"))
        .group_by(rows.c.profile_id)
        .subquery()
    )
    return select(person.c.seq, person.c.converted, func.count()).group_by(person.c.seq, person.c.converted)


def first_times(conn: Connection, name: str) -> dict[int, int]:
    """Each person's first ``name`` event time."""
    stmt = (
        select(events.c.profile_id, func.min(events.c.ts)).where(events.c.event == name).group_by(events.c.profile_id)
    )
    return {int(p): int(t) for p, t in conn.execute(stmt)}


def last_seen(conn: Connection) -> dict[int, int]:
    """Each person's last event time."""
    stmt = select(profile_seen.c.profile_id, profile_seen.c.last_seen)
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


def read_in_parallel(conn: Connection, tasks: Sequence[Callable[[Connection], Any]]) -> list[Any]:
    """Each task's result, in order: the first runs on ``conn``, the others at once on their own read connections.

    The heavy report queries spend their time inside the database, which runs
    them without holding Python's GIL, so separate connections in threads use
    separate cores.  Each extra connection reads its own snapshot, taken as its
    task starts, so writes that land meanwhile may show in one part and not in
    another, and none sees writes ``conn`` has not committed (call this in a
    read transaction).  An in-memory SQLite database is not shared between
    connections: there the tasks run one after another on ``conn``.
    """
    if len(tasks) < 2 or _private_database(conn):
        return [task(conn) for task in tasks]

    def run(task: Callable[[Connection], Any]) -> Any:
        with conn.engine.connect() as other, other.begin():
            return task(other)

    with ThreadPoolExecutor(max_workers=len(tasks) - 1, thread_name_prefix="report") as pool:
        others = [pool.submit(run, task) for task in tasks[1:]]
        first = tasks[0](conn)
        return [first, *(f.result() for f in others)]


def _private_database(conn: Connection) -> bool:
    """Whether other connections would see another database (SQLite in memory)."""
    url = conn.engine.url
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )
