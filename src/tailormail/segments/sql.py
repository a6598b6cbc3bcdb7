"""The segment compiler: a rule tree becomes ONE parameterized query of profile ids.

Every condition compiles to a SELECT of ``profile_id``; ``all`` is INTERSECT,
``any`` is UNION and ``not`` is EXCEPT against the scope (every profile, or
the given ids).  Event conditions read the events table through its indexes
(profile_id, event, ts) and (event, ts, profile_id); traits are read with the
dialect-aware JSON helpers.  Values and times are bound parameters, never SQL
text.  The same query restricted to a few ids is what real time runs, so
batch and real time agree by construction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import (
    BigInteger,
    Select,
    String,
    and_,
    any_,
    bindparam,
    except_,
    exists,
    func,
    intersect,
    not_,
    or_,
    select,
    union,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from tailormail.segments import rules as r
from tailormail.store import jsonsql as js
from tailormail.store.schema import events, profile_seen, profiles


@dataclass(frozen=True)
class Scope:
    """What a query is evaluated against: the moment, the people, the dialect."""

    now: int
    dialect: str
    ids: tuple[int, ...] | None = None
    timezone: str = "UTC"


def compile_rule(rule: r.Condition, scope: Scope) -> Select[Any]:
    """The SELECT of the profile ids for which ``rule`` holds at ``scope.now`` (values inlined as binds)."""
    return _Compiler(scope).condition(rule)


@lru_cache(maxsize=256)
def prepared(rule: r.Condition, dialect: str, restricted: bool, timezone: str = "UTC") -> Select[Any] | None:
    """The same query with ``:now`` (and ``:ids``) left as parameters, built once per rule.

    Real time runs it for every batch, so building the statement once matters.
    ``:ids`` is ONE parameter (see ``id_list``): the SQL text stays the same
    whatever the number of people, so no statement is re-rendered per batch.
    None for rules that need ``now`` while compiling (dates in traits, anniversaries).
    """
    if any(isinstance(n, r.Trait) and n.compare.op in r.DATE_OPS for n in r.walk(rule)):
        return None
    now = bindparam("now", type_=BigInteger())
    ids = _among_id_list(dialect) if restricted else None
    return _Compiler(Scope(0, dialect, None, timezone), now=now, ids=ids).condition(rule)


def id_list(dialect: str, ids: Sequence[int]) -> Any:
    """The value of ``:ids`` in a prepared query: a JSON list on SQLite, an array on PostgreSQL."""
    return list(ids) if dialect == "postgresql" else json.dumps(list(ids))


def _among_id_list(dialect: str) -> Any:
    """``column`` is one of ``:ids`` (json_each on SQLite, ``= ANY`` on PostgreSQL)."""
    if dialect == "postgresql":
        array = bindparam("ids", type_=postgresql.ARRAY(BigInteger()))
        return lambda column: column == any_(array)
    text = bindparam("ids", type_=String())
    return lambda column: column.in_(select(func.json_each(text).table_valued("value").c.value))


class _Compiler:
    def __init__(self, scope: Scope, *, now: Any = None, ids: Any = None) -> None:
        self.scope = scope
        self.d = scope.dialect
        self.now: Any = scope.now if now is None else now
        self.ids: Any = scope.ids if ids is None else ids

    # --- sets -----------------------------------------------------------------

    def among(self, column: Any) -> ColumnElement[bool]:
        """``column`` is one of the scope's ids (a tuple of values, or the prepared ``:ids``)."""
        if isinstance(self.ids, tuple):
            return column.in_(self.ids)
        return self.ids(column)  # type: ignore[no-any-return]

    def everyone(self) -> Select[Any]:
        return self.people(profiles.c.id)

    def people(self, column: Any) -> Select[Any]:
        """Profile ids from ``column`` (a profile id column), within the scope's ids when it has them."""
        stmt = select(column.label("profile_id"))
        return stmt.where(self.among(column)) if self.ids is not None else stmt

    def wrap(self, compound: Any) -> Select[Any]:
        """A compound as a plain SELECT (SQLite cannot nest compounds in parentheses)."""
        sub = compound.subquery()
        return select(sub.c.profile_id)

    def condition(self, node: r.Condition) -> Select[Any]:
        if isinstance(node, r.All):
            return self.all(node.children)
        if isinstance(node, r.AnyOf):
            return self.wrap(union(*(self.condition(c) for c in node.children)))
        if isinstance(node, r.Not):
            return self.wrap(except_(self.everyone(), self.condition(node.child)))
        if isinstance(node, r.SegmentRef):
            assert node.rule is not None, "references are resolved before compiling"
            return self.condition(node.rule)
        if isinstance(node, r.Trait):
            return self.everyone().where(self.compare(profiles.c.traits, node.compare))
        if isinstance(node, r.ProfileTime):
            return self.people(profile_seen.c.profile_id).where(self.profile_time(node))
        return self.event(node)

    def all(self, children: Sequence[r.Condition]) -> Select[Any]:
        positive = [self.condition(c) for c in children if not isinstance(c, r.Not)]
        negative = [self.condition(c.child) for c in children if isinstance(c, r.Not)]
        base = positive[0] if len(positive) == 1 else (self.wrap(intersect(*positive)) if positive else self.everyone())
        if not negative:
            return base
        return self.wrap(except_(base, *negative))

    # --- leaves ---------------------------------------------------------------

    def profile_time(self, node: r.ProfileTime) -> ColumnElement[bool]:
        col = profile_seen.c[node.field]
        cutoff = self.now - node.value * r.DAY_MS
        if node.op == "within_last_days":
            return and_(col > cutoff, col <= self.now)
        return col <= cutoff

    def compare(self, col: Any, cmp: r.Compare, revenue: Any = None) -> ColumnElement[bool]:
        """A trait or property comparison (an event's ``revenue`` reads its own column)."""
        path, op, value = cmp.path, cmp.op, cmp.value
        if revenue is not None and path == ("revenue",):
            return _plain(revenue, op, value)
        if op == "exists":
            found = js.present(col, path, self.d)
            return found if value else not_(found)
        if op == "is_empty":
            blank = js.empty(col, path, self.d)
            return blank if value else not_(blank)
        if op == "contains":
            return js.contains(col, path, value, self.d)
        if op in ("not_equals", "not_in"):
            positive = self.compare(col, r.Compare(path, "equals" if op == "not_equals" else "in", value), revenue)
            return not_(func.coalesce(positive, False))
        if op in r.DATE_OPS:
            return self.date_op(col, path, op, value)
        if op == "equals" and isinstance(value, bool):
            return js.is_bool(col, path, value, self.d)
        sample = value[0] if isinstance(value, tuple) else value
        typed = js.number(col, path, self.d) if _is_num(sample) else js.text(col, path, self.d)
        return _plain(typed, op, value)

    def date_op(self, col: Any, path: tuple[str, ...], op: str, days: int) -> ColumnElement[bool]:
        now = self.scope.now
        as_ms, as_text = js.number(col, path, self.d), js.text(col, path, self.d)
        if op == "within_last_days":
            lo = now - days * r.DAY_MS
            return or_(and_(as_ms > lo, as_ms <= now), and_(as_text > _iso(lo), as_text <= _iso(now)))
        if op == "more_than_days_ago":
            cutoff = now - days * r.DAY_MS
            return or_(as_ms <= cutoff, as_text <= _iso(cutoff))
        return self.anniversary(as_text, days)

    def anniversary(self, as_text: Any, days: int) -> ColumnElement[bool]:
        """Month-day of the date falls in the next ``days`` days of the person's local calendar."""
        tz_text = js.text(profiles.c.traits, ("timezone",), self.d)
        month_day = func.substr(as_text, 6, 5)
        groups = zones_by_local_date(self.scope.now - self.scope.now % 60_000)
        known = [name for names in groups.values() for name in names]
        default_day = datetime.fromtimestamp(self.scope.now / 1000, ZoneInfo(self.scope.timezone)).date()
        clauses = []
        for local_day, names in groups.items():
            in_zone: ColumnElement[bool] = tz_text.in_(names)
            if local_day == default_day:
                in_zone = or_(in_zone, tz_text.is_(None), tz_text.not_in(known))
            clauses.append(and_(in_zone, month_day.in_(upcoming_month_days(local_day, days))))
        return or_(*clauses)

    def event(self, node: r.Event) -> Select[Any]:
        """Events that qualify, then per-person counts, first/last and aggregates."""
        e = events.alias("e")
        where = self.event_filters(e, node.event, node.where, node.window)
        if node.not_followed_by is not None:
            where.append(self.not_followed(e, node.not_followed_by))
        having = self.having(e, node)
        if not having:
            stmt = select(e.c.profile_id).where(*where).distinct()
            return stmt
        grouped = select(e.c.profile_id).where(*where).group_by(e.c.profile_id)
        if _zero_events_satisfy(node):
            return self.wrap(except_(self.everyone(), grouped.having(not_(and_(*having)))))
        return grouped.having(and_(*having))

    def event_filters(
        self, e: Any, name: str, where: Sequence[r.Compare], window: r.Window
    ) -> list[ColumnElement[bool]]:
        now = self.now
        out = [e.c.event == name, e.c.ts <= now - window.end_ago]
        if window.start_ago is not None:
            out.append(e.c.ts > now - window.start_ago)
        if window.after is not None:
            out.append(e.c.ts >= window.after)
        if window.before is not None:
            out.append(e.c.ts < window.before)
        if self.ids is not None:
            out.append(self.among(e.c.profile_id))
        out.extend(self.compare(e.c.properties, c, e.c.revenue) for c in where)
        return out

    def not_followed(self, e: Any, follow: r.FollowedBy) -> ColumnElement[bool]:
        """No ``follow.event`` after this one (within ``follow.within``, and not after now)."""
        b = events.alias("b")
        until = e.c.ts + follow.within if follow.within is not None else self.now
        cond = [b.c.profile_id == e.c.profile_id, b.c.event == follow.event, b.c.ts > e.c.ts, b.c.ts <= until]
        cond.extend(self.compare(b.c.properties, c, b.c.revenue) for c in follow.where)
        later = exists(select(b.c.id).where(*cond))
        if follow.within is None:
            return not_(later)
        # "within T" is only decided once T has passed.
        return and_(not_(later), e.c.ts <= self.now - follow.within)

    def having(self, e: Any, node: r.Event) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        n = func.count()
        if node.count_op == "at_least" and node.count > 1:
            out.append(n >= node.count)
        elif node.count_op == "at_most":
            out.append(n <= node.count)
        elif node.count_op == "exactly":
            out.append(n == node.count)
        for moment, fn, is_before in (
            (node.first_before, func.min, True),
            (node.first_after, func.min, False),
            (node.last_before, func.max, True),
            (node.last_after, func.max, False),
        ):
            if moment is not None:
                out.append(self.bound(fn(e.c.ts), moment, is_before))
        if node.aggregate is not None:
            out.append(self.aggregate(e, node.aggregate))
        return out

    def bound(self, value: Any, moment: r.Moment, is_before: bool) -> ColumnElement[bool]:
        """Same edges as windows: relative ``before`` holds from ts + ago on, ``after`` until then."""
        if moment.at is not None:
            return value < moment.at if is_before else value >= moment.at
        cutoff = self.now - (moment.ago or 0)
        return value <= cutoff if is_before else value > cutoff

    def aggregate(self, e: Any, agg: r.Aggregate) -> ColumnElement[bool]:
        if agg.function == "count":
            value: Any = func.count()
        else:
            source = (
                e.c.revenue
                if agg.property == "revenue"
                else js.number(e.c.properties, tuple((agg.property or "").split(".")), self.d)
            )
            value = getattr(func, agg.function)(source)
            if agg.function == "sum":
                value = func.coalesce(value, 0.0)
        return _plain(value, agg.op, agg.value)


def _plain(col: Any, op: str, value: Any) -> ColumnElement[bool]:
    """A comparison on an ordinary (typed) expression."""
    if op == "equals":
        return col == value
    if op == "not_equals":
        return not_(func.coalesce(col == value, False))
    if op == "in":
        return col.in_(list(value))
    if op == "not_in":
        return not_(func.coalesce(col.in_(list(value)), False))
    if op == "between":
        return col.between(value[0], value[1])
    if op == "starts_with":
        return func.substr(col, 1, len(str(value))) == str(value)
    if op == "exists":
        return col.is_not(None) if value else col.is_(None)
    ops = {"gt": col.__gt__, "gte": col.__ge__, "lt": col.__lt__, "lte": col.__le__}
    if op not in ops:
        raise ValueError(f"operator {op} does not apply here")
    return ops[op](value)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _zero_events_satisfy(node: r.Event) -> bool:
    """Whether someone with no qualifying event meets the HAVING part (at most N, sum < X)."""
    if node.first_before or node.first_after or node.last_before or node.last_after:
        return False
    if node.count_op == "at_least" and node.count > 0:
        return False
    if node.count_op == "exactly" and node.count > 0:
        return False
    agg = node.aggregate
    if agg is None:
        return True
    if agg.function not in ("count", "sum"):
        return False
    v = agg.value
    return {
        "equals": lambda: v == 0,
        "gt": lambda: v < 0,
        "gte": lambda: v <= 0,
        "lt": lambda: v > 0,
        "lte": lambda: v >= 0,
        "between": lambda: v[0] <= 0 <= v[1],
    }[agg.op]()


@lru_cache(maxsize=64)
def zones_by_local_date(now_ms: int) -> dict[date, list[str]]:
    """IANA zone names grouped by the calendar date they show at ``now_ms``."""
    moment = datetime.fromtimestamp(now_ms / 1000, UTC)
    groups: dict[date, list[str]] = {}
    for name in sorted(available_timezones()):
        try:
            groups.setdefault(moment.astimezone(ZoneInfo(name)).date(), []).append(name)
        except (ValueError, KeyError):  # a zone file the system cannot read
            continue
    return groups


def upcoming_month_days(first: date, days: int) -> list[str]:
    """``MM-DD`` of ``first`` and the next ``days`` days (29 Feb counts on 28 Feb off leap years)."""
    out: list[str] = []
    for offset in range(min(days, 366) + 1):
        day = first + timedelta(days=offset)
        out.append(day.strftime("%m-%d"))
        if day.month == 2 and day.day == 28 and not _leap(day.year):
            out.append("02-29")
    return out


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def event_stats(node: r.Event, scope: Scope) -> Select[Any]:
    """For explain: count, first and last time, and the aggregate of one person's qualifying events."""
    compiler = _Compiler(scope)
    e = events.alias("e")
    where = compiler.event_filters(e, node.event, node.where, node.window)
    if node.not_followed_by is not None:
        where.append(compiler.not_followed(e, node.not_followed_by))
    columns: list[Any] = [func.count().label("count"), func.min(e.c.ts).label("first"), func.max(e.c.ts).label("last")]
    agg = node.aggregate
    if agg is not None and agg.function != "count":
        source = (
            e.c.revenue
            if agg.property == "revenue"
            else js.number(e.c.properties, tuple((agg.property or "").split(".")), scope.dialect)
        )
        columns.append(getattr(func, agg.function)(source).label("aggregate"))
    return select(*columns).where(*where)
