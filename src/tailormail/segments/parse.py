"""Validate a rule written in YAML or JSON into the rule tree.

Every error names the source, the line (YAML) and the field path
(``rule.all[1].window.last``), and suggests the closest valid name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from tailormail.clock import parse_time, to_ms
from tailormail.errors import ValidationError
from tailormail.segments import rules as r
from tailormail.segments.yamlsource import Located, Path

KINDS = ("all", "any", "not", "segment", "trait", "profile", "event")
"""The key that says what kind a condition is."""

EVENT_KEYS = (
    "event",
    "performed",
    "where",
    "at_least",
    "at_most",
    "exactly",
    "window",
    "first",
    "last",
    "aggregate",
    "not_followed_by",
)
WINDOW_KEYS = ("last", "from", "to", "after", "before")
_UNITS = {"second": 1000, "minute": 60_000, "hour": 3_600_000, "day": r.DAY_MS, "week": 7 * r.DAY_MS}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day|week)s?(\s+ago)?\s*$", re.IGNORECASE)


def suggest(name: str, choices: Sequence[str]) -> str | None:
    """The closest valid name to ``name``, if one is close enough."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return close[0] if close else None


def field_name(path: Path) -> str:
    """A path as people write it: ``rule.all[1].window``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class RuleParser:
    """Turns one located document's ``rule`` into a validated Condition."""

    def __init__(self, doc: Located, event_names: Mapping[str, str]) -> None:
        self.doc = doc
        self.event_names = dict(event_names)

    def fail(self, path: Path, message: str, hint: str | None = None) -> NoReturn:
        """Raise a ValidationError that says where."""
        raise ValidationError(
            f"{field_name(path)}: {message}",
            field=field_name(path),
            line=self.doc.line(path),
            source=self.doc.source,
            hint=hint,
        )

    def unknown(self, path: Path, name: str, choices: Sequence[str], what: str) -> NoReturn:
        """Raise for an unknown name, suggesting the closest valid one."""
        close = suggest(name, choices)
        hint = f"did you mean {close!r}?" if close else f"use one of: {', '.join(choices)}"
        self.fail(path, f"unknown {what} {name!r}", hint)

    def condition(self, value: Any, path: Path) -> r.Condition:
        """Any condition node."""
        node = self.mapping(value, path, "a condition")
        kinds = [k for k in node if k in KINDS]
        if not kinds:
            first = next(iter(node), "")
            self.unknown((*path, first), first, KINDS, "condition kind")
        if len(kinds) > 1:
            self.fail(path, f"a condition has one kind, found {' and '.join(kinds)}", "split it into an `all:` list")
        kind = kinds[0]
        if kind in ("all", "any"):
            self.only(node, path, (kind,))
            items = node[kind]
            if not isinstance(items, list) or not items:
                self.fail((*path, kind), f"`{kind}` needs a non-empty list of conditions")
            children = tuple(self.condition(c, (*path, kind, i)) for i, c in enumerate(items))
            return r.All(children) if kind == "all" else r.AnyOf(children)
        if kind == "not":
            self.only(node, path, ("not",))
            return r.Not(self.condition(node["not"], (*path, "not")))
        if kind == "segment":
            self.only(node, path, ("segment",))
            return r.SegmentRef(self.text(node["segment"], (*path, "segment")))
        if kind == "trait":
            return self.trait(node, path)
        if kind == "profile":
            return self.profile(node, path)
        return self.event(node, path)

    # --- shapes ---------------------------------------------------------------

    def mapping(self, value: Any, path: Path, what: str) -> dict[str, Any]:
        """``value`` if it is a mapping, else a clear error."""
        if not isinstance(value, dict):
            self.fail(path, f"expected {what} (a mapping), got {type(value).__name__}")
        return value

    def only(self, node: Mapping[str, Any], path: Path, allowed: Sequence[str]) -> None:
        """Refuse keys outside ``allowed``."""
        for key in node:
            if key not in allowed:
                self.unknown((*path, key), key, allowed, "key")

    def text(self, value: Any, path: Path) -> str:
        """A non-empty string."""
        if not isinstance(value, str) or not value.strip():
            self.fail(path, "expected a non-empty name")
        return value.strip()

    def count(self, value: Any, path: Path) -> int:
        """A whole number >= 0."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(path, f"expected a whole number >= 0, got {value!r}")
        return value

    def duration(self, value: Any, path: Path) -> int:
        """``7 days``, ``24 hours``, ``{days: 7}`` -> milliseconds."""
        if isinstance(value, dict) and len(value) == 1:
            ((unit, amount),) = value.items()
            value = f"{amount} {unit}"
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            self.fail(path, f"expected a duration like '7 days' or '24 hours', got {value!r}")
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])

    def instant(self, value: Any, path: Path) -> int:
        """An ISO-8601 date or time -> epoch milliseconds."""
        try:
            return to_ms(parse_time(str(value)))
        except ValueError:
            self.fail(path, f"expected an ISO date like 2026-01-31, got {value!r}")

    def moment(self, value: Any, path: Path) -> r.Moment:
        """``90 days ago`` (relative) or an ISO date (absolute)."""
        if isinstance(value, str) and value.strip().lower().endswith("ago"):
            return r.Moment(ago=self.duration(value, path))
        return r.Moment(at=self.instant(value, path))

    def dotted(self, value: Any, path: Path) -> tuple[str, ...]:
        """``consent.email`` -> ("consent", "email")."""
        parts = tuple(self.text(value, path).split("."))
        if any(not p for p in parts):
            self.fail(path, f"{value!r} has an empty part", "write dotted paths like predicted.purchase_30d")
        return parts

    # --- leaves ---------------------------------------------------------------

    def trait(self, node: dict[str, Any], path: Path) -> r.Trait:
        """``{trait: PATH, OP: VALUE}``."""
        self.only(node, path, ("trait", *r.TRAIT_OPS))
        trait_path = self.dotted(node["trait"], (*path, "trait"))
        op, value = self.one_op(node, path, ("trait",), r.TRAIT_OPS)
        return r.Trait(self.compare(trait_path, op, value, (*path, op)))

    def profile(self, node: dict[str, Any], path: Path) -> r.ProfileTime:
        """``{profile: first_seen, within_last_days: 30}``."""
        field = self.text(node["profile"], (*path, "profile"))
        if field not in r.PROFILE_FIELDS:
            self.unknown((*path, "profile"), field, r.PROFILE_FIELDS, "profile field")
        self.only(node, path, ("profile", "within_last_days", "more_than_days_ago"))
        op, value = self.one_op(node, path, ("profile",), ("within_last_days", "more_than_days_ago"))
        return r.ProfileTime(field, op, self.count(value, (*path, op)))

    def one_op(self, node: dict[str, Any], path: Path, skip: Sequence[str], ops: Sequence[str]) -> tuple[str, Any]:
        """The single operator key of a comparison."""
        found = [k for k in node if k not in skip]
        if len(found) != 1:
            self.fail(path, f"needs exactly one operator, found {len(found)}", f"use one of: {', '.join(ops)}")
        if found[0] not in ops:
            self.unknown((*path, found[0]), found[0], ops, "operator")
        return found[0], node[found[0]]

    def compare(self, target: tuple[str, ...], op: str, value: Any, path: Path) -> r.Compare:
        """Check that ``value`` suits ``op``."""
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
                self.fail(path, f"`{op}` needs a non-empty list of values")
            value = tuple(value)
        elif op == "between":
            if not isinstance(value, list) or len(value) != 2 or not all(_ordered(v) for v in value):
                self.fail(path, "`between` needs [low, high] (numbers or dates)")
            value = tuple(value)
        elif op in r.PRESENCE_OPS:
            if not isinstance(value, bool):
                self.fail(path, f"`{op}` needs true or false")
        elif op in r.DATE_OPS:
            self.count(value, path)
        elif op in ("gt", "gte", "lt", "lte"):
            if not _ordered(value):
                self.fail(path, f"`{op}` needs a number or a date, got {value!r}")
        elif op in ("contains", "starts_with"):
            if not isinstance(value, str | int | float) or (isinstance(value, bool) and op == "starts_with"):
                self.fail(path, f"`{op}` needs text")
        elif not _scalar(value):
            self.fail(path, f"`{op}` needs a single value (text, number, true/false)")
        return r.Compare(target, op, value)

    def where(self, value: Any, path: Path) -> tuple[r.Compare, ...]:
        """``{category: shoes, revenue: {gt: 50}}`` -> property comparisons."""
        node = self.mapping(value, path, "property filters")
        out: list[r.Compare] = []
        for prop, spec in node.items():
            prop_path = self.dotted(prop, (*path, prop))
            if not isinstance(spec, dict):
                out.append(self.compare(prop_path, "equals", spec, (*path, prop)))
                continue
            ops = r.VALUE_OPS + r.PRESENCE_OPS
            for op, operand in spec.items():
                if op not in ops:
                    self.unknown((*path, prop, op), op, ops, "operator")
                out.append(self.compare(prop_path, op, operand, (*path, prop, op)))
        return tuple(out)

    def event_name(self, value: Any, path: Path) -> str:
        """An event name; ``$add_to_cart`` is the name set in tailormail.toml [events]."""
        name = self.text(value, path)
        if not name.startswith("$"):
            return name
        key = name[1:]
        if key not in self.event_names:
            self.unknown(path, name, [f"${k}" for k in self.event_names], "event setting")
        return self.event_names[key]

    def event(self, node: dict[str, Any], path: Path) -> r.Condition:
        """An event condition (see rules.Event)."""
        self.only(node, path, EVENT_KEYS)
        counts = [k for k in ("at_least", "at_most", "exactly") if k in node]
        if len(counts) > 1:
            self.fail((*path, counts[1]), f"use one of at_least / at_most / exactly, not {' and '.join(counts)}")
        count_op = counts[0] if counts else "at_least"
        # An aggregate alone compares over all matching events, none included (sum < 50 holds for 0).
        count = self.count(node[count_op], (*path, count_op)) if counts else (0 if "aggregate" in node else 1)
        first = self.bounds(node.get("first"), (*path, "first"))
        last = self.bounds(node.get("last"), (*path, "last"))
        event = r.Event(
            event=self.event_name(node["event"], (*path, "event")),
            where=self.where(node["where"], (*path, "where")) if "where" in node else (),
            window=self.window(node["window"], (*path, "window")) if "window" in node else r.Window(),
            count_op=count_op,
            count=count,
            first_before=first[0],
            first_after=first[1],
            last_before=last[0],
            last_after=last[1],
            aggregate=self.aggregate(node["aggregate"], (*path, "aggregate")) if "aggregate" in node else None,
            not_followed_by=self.followed(node["not_followed_by"], (*path, "not_followed_by"))
            if "not_followed_by" in node
            else None,
        )
        performed = node.get("performed", True)
        if not isinstance(performed, bool):
            self.fail((*path, "performed"), "`performed` is true or false")
        return event if performed else r.Not(event)

    def window(self, value: Any, path: Path) -> r.Window:
        """``{last: 7 days}``, ``{from: 7 days, to: 24 hours}`` or ``{after: DATE, before: DATE}``."""
        node = self.mapping(value, path, "a window")
        self.only(node, path, WINDOW_KEYS)
        if "last" in node and "from" in node:
            self.fail(path, "use `last` or `from`/`to`, not both")
        start = node.get("last", node.get("from"))
        start_ago = self.duration(start, (*path, "last" if "last" in node else "from")) if start is not None else None
        end_ago = self.duration(node["to"], (*path, "to")) if "to" in node else 0
        if start_ago is not None and end_ago >= start_ago:
            self.fail((*path, "to"), "`to` must be more recent (shorter ago) than `from`")
        after = self.instant(node["after"], (*path, "after")) if "after" in node else None
        before = self.instant(node["before"], (*path, "before")) if "before" in node else None
        if after is not None and before is not None and after >= before:
            self.fail((*path, "before"), "`before` must be later than `after`")
        return r.Window(start_ago, end_ago, after, before)

    def bounds(self, value: Any, path: Path) -> tuple[r.Moment | None, r.Moment | None]:
        """``{before: X, after: Y}`` for first/last performed."""
        if value is None:
            return None, None
        node = self.mapping(value, path, "before/after bounds")
        self.only(node, path, ("before", "after"))
        if not node:
            self.fail(path, "needs `before` or `after`")
        return (
            self.moment(node["before"], (*path, "before")) if "before" in node else None,
            self.moment(node["after"], (*path, "after")) if "after" in node else None,
        )

    def aggregate(self, value: Any, path: Path) -> r.Aggregate:
        """``{sum: revenue, gt: 500}``."""
        node = self.mapping(value, path, "an aggregate")
        functions = [k for k in node if k in r.AGGREGATES]
        if len(functions) != 1:
            other = next((k for k in node if k not in r.COMPARISONS), "")
            if other:
                self.unknown((*path, other), other, r.AGGREGATES, "aggregate")
            self.fail(path, "needs one of " + ", ".join(r.AGGREGATES), "e.g. {sum: revenue, gt: 500}")
        function = functions[0]
        prop = None if function == "count" else self.text(node[function], (*path, function))
        op, operand = self.one_op(node, path, (function,), r.COMPARISONS)
        compare = self.compare((prop or "",), op, operand, (*path, op))
        if op != "between" and (isinstance(operand, bool) or not isinstance(operand, int | float)):
            self.fail((*path, op), f"aggregates compare with numbers, got {operand!r}")
        return r.Aggregate(function, prop, op, compare.value)

    def followed(self, value: Any, path: Path) -> r.FollowedBy:
        """``{event: purchase, within: 1 day, where: {...}}``."""
        node = self.mapping(value, path, "a follow-up event")
        self.only(node, path, ("event", "within", "where"))
        if "event" not in node:
            self.fail(path, "needs `event`")
        return r.FollowedBy(
            event=self.event_name(node["event"], (*path, "event")),
            where=self.where(node["where"], (*path, "where")) if "where" in node else (),
            within=self.duration(node["within"], (*path, "within")) if "within" in node else None,
        )


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _ordered(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def parse_rule(doc: Located, path: Path, event_names: Mapping[str, str]) -> r.Condition:
    """Validate the condition at ``path`` of ``doc``."""
    value: Any = doc.value
    for part in path:
        value = value[part]
    return RuleParser(doc, event_names).condition(value, path)
