"""Segment definitions: YAML files in the workspace's ``segments/`` folder.

A file ``segments/NAME.yaml`` holds ``name`` (optional, must match the file),
``description``, ``active`` (default true) and ``rule``.  The API writes the
same files, so git stays the source of truth.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from tailormail.config import Settings, load_settings
from tailormail.errors import NotFound, ValidationError
from tailormail.segments import rules as r
from tailormail.segments.parse import RuleParser, suggest
from tailormail.segments.yamlsource import Located, from_json, load_yaml

FOLDER = "segments"
TOP_KEYS = ("name", "description", "active", "rule")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


@dataclass(frozen=True)
class Segment:
    """One validated segment with its rule (references to other segments inlined)."""

    name: str
    description: str
    rule: r.Condition
    active: bool = True
    source: str = ""
    document: Any = None

    @cached_property
    def rule_hash(self) -> str:
        """Changes whenever what the rule means changes (event names resolved); computed once per definition.

        Real time asks for every segment in every batch; a definition is immutable
        and lives until its file changes, so the hash is kept with it.
        """
        return hashlib.sha256(repr(self.rule).encode("utf-8")).hexdigest()[:16]

    @property
    def references(self) -> set[str]:
        """Names of the segments this one uses, directly or not."""
        return {n.name for n in r.walk(self.rule) if isinstance(n, r.SegmentRef)}


def event_settings(settings: Settings) -> dict[str, str]:
    """``$name`` -> event name, from tailormail.toml [events]."""
    return {f.name: getattr(settings.events, f.name) for f in fields(settings.events)}


def parse_segment(doc: Located, name: str, event_names: dict[str, str]) -> Segment:
    """Validate one document (unresolved references)."""
    parser = RuleParser(doc, event_names)
    top = parser.mapping(doc.value, (), "a segment definition")
    parser.only(top, (), TOP_KEYS)
    declared = top.get("name", name)
    if declared != name:
        parser.fail(("name",), f"name {declared!r} differs from the file name {name!r}", f"rename the file {declared}")
    check_name(name, doc.source)
    if "rule" not in top:
        parser.fail((), "a segment needs a `rule`", "see the README section on segments")
    description = top.get("description", "")
    if not isinstance(description, str):
        parser.fail(("description",), "description must be text")
    active = top.get("active", True)
    if not isinstance(active, bool):
        parser.fail(("active",), "active is true or false")
    rule = parser.condition(top["rule"], ("rule",))
    return Segment(name, description.strip(), rule, active, doc.source, doc.value)


def check_name(name: str, source: str = "") -> None:
    """Refuse names that would not make a clean file name."""
    if not NAME.match(name):
        raise ValidationError(
            f"segment name {name!r} is not allowed",
            field="name",
            source=source or None,
            hint="use lower-case letters, digits, _ and - (at most 100)",
        )


def resolve(segments: dict[str, Segment]) -> dict[str, Segment]:
    """Inline referenced rules; refuse unknown names and cycles."""
    done: dict[str, Segment] = {}

    def visit(name: str, trail: tuple[str, ...]) -> Segment:
        if name in done:
            return done[name]
        segment = segments[name]
        rule = _inline(segment.rule, segment, (*trail, name), visit, segments)
        done[name] = replace(segment, rule=rule)
        return done[name]

    for name in segments:
        visit(name, ())
    return done


def _inline(node: r.Condition, owner: Segment, trail: tuple[str, ...], visit: Any, known: dict) -> r.Condition:
    if isinstance(node, r.SegmentRef):
        if node.name not in known:
            close = suggest(node.name, list(known))
            raise ValidationError(
                f"segment {owner.name!r} refers to unknown segment {node.name!r}",
                field="segment",
                source=owner.source or None,
                hint=f"did you mean {close!r}?" if close else "create it first, or remove the reference",
            )
        if node.name in trail:
            cycle = " -> ".join((*trail[trail.index(node.name) :], node.name))
            raise ValidationError(
                f"segments refer to each other in a cycle: {cycle}",
                field="segment",
                source=owner.source or None,
                hint="a segment cannot include itself, directly or through others",
            )
        return r.SegmentRef(node.name, visit(node.name, trail).rule)
    if isinstance(node, r.All | r.AnyOf):
        return type(node)(tuple(_inline(c, owner, trail, visit, known) for c in node.children))
    if isinstance(node, r.Not):
        return r.Not(_inline(node.child, owner, trail, visit, known))
    return node


def folder(workspace: Path) -> Path:
    """The segments folder of a workspace."""
    return Path(workspace) / FOLDER


def load_segments(workspace: Path | Settings) -> dict[str, Segment]:
    """Every segment defined in the workspace, validated and resolved, by name."""
    settings = workspace if isinstance(workspace, Settings) else load_settings(workspace)
    names = event_settings(settings)
    found: dict[str, Segment] = {}
    base = folder(settings.workspace)
    files = sorted([*base.glob("*.yaml"), *base.glob("*.yml")]) if base.exists() else []
    for path in files:
        doc = load_yaml(path.read_text(encoding="utf-8"), str(path.relative_to(settings.workspace)))
        found[path.stem] = parse_segment(doc, path.stem, names)
    return resolve(found)


def validate_document(
    settings: Settings, name: str, document: Any, *, source: str = "request"
) -> tuple[Segment, dict[str, Segment]]:
    """Check a definition sent through the API against the workspace's other segments."""
    segment = parse_segment(from_json(document, source), name, event_settings(settings))
    others = {k: v for k, v in load_segments(settings).items() if k != name}
    raw = {**others, name: segment}
    return resolve(raw)[name], raw


def write_segment(settings: Settings, name: str, document: dict[str, Any]) -> Path:
    """Validate and write ``segments/NAME.yaml``; returns the file."""
    validate_document(settings, name, document)
    path = folder(settings.workspace) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"name": name, **{k: v for k, v in document.items() if k != "name"}}
    path.write_text(yaml.safe_dump(json.loads(json.dumps(body)), sort_keys=False), encoding="utf-8")
    return path


def delete_segment(settings: Settings, name: str) -> None:
    """Remove a segment's file; refused while another segment refers to it."""
    segments = load_segments(settings)
    if name not in segments:
        raise NotFound(f"no segment named {name!r}", hint="see `tailormail segments list`")
    users = sorted(n for n, s in segments.items() if name in s.references and n != name)
    if users:
        raise ValidationError(
            f"segment {name!r} is used by {', '.join(users)}", field="name", hint="remove those references first"
        )
    for suffix in (".yaml", ".yml"):
        path = folder(settings.workspace) / f"{name}{suffix}"
        if path.exists():
            path.unlink()


def get_segment(segments: dict[str, Segment], name: str) -> Segment:
    """One segment by name, or NotFound with the closest name."""
    if name not in segments:
        close = suggest(name, list(segments))
        raise NotFound(
            f"no segment named {name!r}",
            hint=f"did you mean {close!r}?" if close else "see `tailormail segments list`",
        )
    return segments[name]
