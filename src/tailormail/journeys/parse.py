"""Validate a journey written in YAML (or the same JSON) into a Journey.

Errors name the file, the line and the node (``steps[3].branch.then``), and
suggest the closest valid name, like segment rules do (this reuses their parser).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tailormail.journeys import model as m
from tailormail.segments.parse import RuleParser
from tailormail.segments.yamlsource import Located, Path

TOP_KEYS = ("name", "description", "kind", "entry", "goal", "reentry", "steps", "paused")
ENTRY_KINDS = ("event", "segment_entered", "segment_exited", "date", "inactive", "broadcast")
NODE_KINDS = ("send", "wait", "wait_for", "branch", "split", "update_profile", "webhook", "exit")
KINDS = ("marketing", "transactional")
_LOCAL_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DAY_MS = 86_400_000


class JourneyParser(RuleParser):
    """Turns one located YAML document into a validated Journey."""

    def journey(self, name: str) -> m.Journey:
        """The whole document."""
        doc = self.mapping(self.doc.value, (), "a journey")
        self.only(doc, (), TOP_KEYS)
        for required in ("entry", "steps"):
            if required not in doc:
                self.fail((), f"a journey needs `{required}`", "see journeys/cart_abandonment.yaml for an example")
        kind = doc.get("kind", "marketing")
        if kind not in KINDS:
            self.unknown(("kind",), str(kind), KINDS, "kind")
        goal, goal_where = self.goal(doc.get("goal"))
        nodes, lines, start = self.steps(doc["steps"])
        return m.Journey(
            name=name,
            description=str(doc.get("description", "")),
            entry=self.entry(doc["entry"]),
            nodes=nodes,
            start=start,
            kind=kind,
            goal=goal,
            goal_where=goal_where,
            reentry_ms=self.reentry(doc.get("reentry", "never")),
            source=self.doc.source,
            lines=lines,
        )

    def entry(self, value: Any) -> m.Entry:
        """``entry:`` in one of its forms."""
        path: Path = ("entry",)
        node = self.mapping(value, path, "an entry")
        kinds = [k for k in node if k in ENTRY_KINDS]
        if len(kinds) != 1:
            first = next(iter(node), "")
            if not kinds:
                self.unknown((*path, first), first, ENTRY_KINDS, "entry")
            self.fail(path, f"an entry has one kind, found {' and '.join(kinds)}")
        kind = kinds[0]
        if kind == "event":
            self.only(node, path, ("event", "where"))
            where = self.where(node["where"], (*path, "where")) if "where" in node else ()
            return m.EventEntry(self.event_name(node["event"], (*path, "event")), where)
        self.only(node, path, (kind,))
        inner = node[kind]
        if kind in ("segment_entered", "segment_exited"):
            return m.SegmentEntry(self.text(inner, (*path, kind)), kind.removeprefix("segment_"))
        if kind == "inactive":
            return m.InactivityEntry(max(1, self.duration(inner, (*path, kind)) // DAY_MS))
        spec = self.mapping(inner, (*path, kind), f"`{kind}` settings")
        if kind == "date":
            self.only(spec, (*path, kind), ("trait", "at"))
            return m.DateEntry(
                self.dotted(spec.get("trait"), (*path, kind, "trait")),
                self.local_time(spec.get("at", "09:00"), (*path, kind, "at")),
            )
        self.only(spec, (*path, kind), ("segment", "at"))
        return m.BroadcastEntry(
            self.text(spec.get("segment"), (*path, kind, "segment")), self.instant(spec.get("at"), (*path, kind, "at"))
        )

    def goal(self, value: Any) -> tuple[str | None, tuple[Any, ...]]:
        """``goal: $purchase`` or ``goal: {event: ..., where: ...}``."""
        if value is None:
            return None, ()
        if isinstance(value, str):
            return self.event_name(value, ("goal",)), ()
        spec = self.mapping(value, ("goal",), "a goal")
        self.only(spec, ("goal",), ("event", "where"))
        where = self.where(spec["where"], ("goal", "where")) if "where" in spec else ()
        return self.event_name(spec.get("event"), ("goal", "event")), where

    def reentry(self, value: Any) -> int | None:
        """``never`` or a duration after which a person may enter again."""
        if value in ("never", None, False):
            return None
        return self.duration(value, ("reentry",))

    def local_time(self, value: Any, path: Path) -> str:
        """``HH:MM`` on a 24-hour clock."""
        if not isinstance(value, str) or not _LOCAL_TIME.match(value):
            self.fail(path, f"expected a local time like '09:00', got {value!r}")
        return value

    def steps(self, value: Any) -> tuple[dict[str, m.Node], dict[str, int], str]:
        """The ordered list of steps; each goes on to the next unless it says otherwise."""
        if not isinstance(value, list) or not value:
            self.fail(("steps",), "`steps` needs a non-empty list")
        ids = [self.step_id(step, i) for i, step in enumerate(value)]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            self.fail(("steps",), f"two steps are named {dup!r}", "give each step a unique id")
        nodes: dict[str, m.Node] = {}
        lines: dict[str, int] = {}
        for i, step in enumerate(value):
            following = ids[i + 1] if i + 1 < len(ids) else None
            nodes[ids[i]] = self.node(step, ("steps", i), following, ids)
            lines[ids[i]] = self.doc.line(("steps", i)) or 0
        self.check_loops(nodes, ids)
        return nodes, lines, ids[0]

    def step_id(self, step: Any, index: int) -> str:
        """A step's id: ``id:`` or ``step_<n>``."""
        node = self.mapping(step, ("steps", index), "a step")
        return self.text(node["id"], ("steps", index, "id")) if "id" in node else f"step_{index + 1}"

    def target(self, value: Any, path: Path, ids: list[str]) -> str | None:
        """A reference to another step (``exit`` ends the run)."""
        name = self.text(value, path)
        if name == "exit":
            return None
        if name not in ids:
            self.unknown(path, name, ids, "step")
        return name

    def node(self, step: dict[str, Any], path: Path, following: str | None, ids: list[str]) -> m.Node:
        """One step."""
        kinds = [k for k in step if k in NODE_KINDS]
        if len(kinds) != 1:
            other = next((k for k in step if k not in ("id", "next")), "")
            if not kinds:
                self.unknown((*path, other), other, NODE_KINDS, "step kind")
            self.fail(path, f"a step does one thing, found {' and '.join(kinds)}", "split it into two steps")
        kind = kinds[0]
        self.only(step, path, ("id", "next", kind))
        nxt = self.target(step["next"], (*path, "next"), ids) if "next" in step else following
        return getattr(self, f"node_{kind}")(step[kind], (*path, kind), nxt, ids)

    def node_send(self, value: Any, path: Path, nxt: str | None, ids: list[str]) -> m.Node:
        """``send: TEMPLATE`` or ``send: {template, subject_variants}``."""
        if isinstance(value, str):
            return m.Send(self.text(value, path), nxt)
        spec = self.mapping(value, path, "send settings")
        self.only(spec, path, ("template", "subject_variants"))
        variants = spec.get("subject_variants", [])
        if not isinstance(variants, list):
            self.fail((*path, "subject_variants"), "expected a list of subject lines")
        return m.Send(self.text(spec.get("template"), (*path, "template")), nxt, tuple(map(str, variants)))

    def node_wait(self, value: Any, path: Path, nxt: str | None, ids: list[str]) -> m.Node:
        """``wait: 1 hour`` or ``{until_local_time: "09:00"}`` or ``{until_trait: renewal_date}``."""
        if not isinstance(value, dict) or set(value) - {"until_local_time", "until_trait"}:
            return m.Wait(nxt, duration_ms=self.duration(value, path))
        if len(value) != 1:
            self.fail(path, "wait until one thing: a local time or a date trait")
        if "until_local_time" in value:
            return m.Wait(nxt, until_local=self.local_time(value["until_local_time"], (*path, "until_local_time")))
        return m.Wait(nxt, until_trait=self.dotted(value["until_trait"], (*path, "until_trait")))

    def node_wait_for(self, value: Any, path: Path, nxt: str | None, ids: list[str]) -> m.Node:
        """``{event, where, within, then, else}``."""
        spec = self.mapping(value, path, "wait_for settings")
        self.only(spec, path, ("event", "where", "within", "then", "else"))
        if "within" not in spec:
            self.fail(path, "wait_for needs `within` (a timeout like '2 days')")
        where = self.where(spec["where"], (*path, "where")) if "where" in spec else ()
        return m.WaitFor(
            self.event_name(spec.get("event"), (*path, "event")),
            where,
            self.duration(spec["within"], (*path, "within")),
            self.target(spec["then"], (*path, "then"), ids) if "then" in spec else nxt,
            self.target(spec["else"], (*path, "else"), ids) if "else" in spec else nxt,
        )

    def node_branch(self, value: Any, path: Path, nxt: str | None, ids: list[str]) -> m.Node:
        """``{if: RULE, then: STEP, else: STEP}``."""
        spec = self.mapping(value, path, "branch settings")
        self.only(spec, path, ("if", "then", "else"))
        if "if" not in spec:
            self.fail(path, "branch needs `if` (a rule in the segment language)")
        return m.Branch(
            self.condition(spec["if"], (*path, "if")),
            self.target(spec["then"], (*path, "then"), ids) if "then" in spec else nxt,
            self.target(spec["else"], (*path, "else"), ids) if "else" in spec else nxt,
        )

    def node_split(self, value: Any, path: Path, nxt: str | None, ids: list[str]) -> m.Node:
        """``{arms: [{name, weight, next}], holdout: 10}`` (weights in any unit)."""
        spec = self.mapping(value, path, "split settings")
        self.only(spec, path, ("arms", "holdout"))
        arms_value = spec.get("arms")
        if not isinstance(arms_value, list) or len(arms_value) < 1:
            self.fail((*path, "arms"), "split needs a list of arms")
        arms = []
        for i, arm in enumerate(arms_value):
            arm_path = (*path, "arms", i)
            a = self.mapping(arm, arm_path, "an arm")
            self.only(a, arm_path, ("name", "weight", "next"))
            weight = a.get("weight", 1)
            if not isinstance(weight, int | float) or weight <= 0:
                self.fail((*arm_path, "weight"), f"weight must be a positive number, got {weight!r}")
            target = self.target(a["next"], (*arm_path, "next"), ids) if "next" in a else nxt
            arms.append(m.Arm(self.text(a.get("name"), (*arm_path, "name")), float(weight), target))
        holdout = spec.get("holdout", 0)
        if not isinstance(holdout, int | float) or holdout < 0:
            self.fail((*path, "holdout"), f"holdout must be a number >= 0, got {holdout!r}")
        return m.Split(tuple(arms), float(holdout))

    def node_update_profile(self, value: Any, path: Path, nxt: str | None, ids: list[str]) -> m.Node:
        """``update_profile: {trait: value, ...}``."""
        return m.UpdateProfile(dict(self.mapping(value, path, "traits to set")), nxt)

    def node_webhook(self, value: Any, path: Path, nxt: str | None, ids: list[str]) -> m.Node:
        """``webhook: URL`` or ``{url: URL}``."""
        url = value.get("url") if isinstance(value, dict) else value
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            self.fail(path, f"webhook needs an http(s) URL, got {url!r}")
        return m.Webhook(url, nxt)

    def node_exit(self, value: Any, path: Path, nxt: str | None, ids: list[str]) -> m.Node:
        """``exit: true``."""
        return m.Exit()

    def check_loops(self, nodes: Mapping[str, m.Node], ids: list[str]) -> None:
        """Refuse a cycle with no wait in it: it would spin forever within one step."""
        waiting = {i for i, n in nodes.items() if isinstance(n, m.Wait | m.WaitFor)}
        graph = {i: m.successors(n) for i, n in nodes.items()}
        for start in ids:
            if start in waiting:
                continue
            stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
            seen: set[str] = set()
            while stack:
                node, trail = stack.pop()
                for nxt in graph[node]:
                    if nxt == start:
                        self.fail(
                            ("steps", ids.index(start)),
                            f"steps {' -> '.join((*trail, nxt))} loop with no wait",
                            "add a wait inside the loop",
                        )
                    if nxt not in waiting and nxt not in seen:
                        seen.add(nxt)
                        stack.append((nxt, (*trail, nxt)))


def parse_journey(doc: Located, name: str, event_names: Mapping[str, str]) -> m.Journey:
    """Validate one journey document."""
    return JourneyParser(doc, event_names).journey(name)
