"""Journey definitions: YAML files in the workspace's ``journeys/`` folder."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from tailormail.config import Settings, load_settings
from tailormail.errors import ConfigError, NotFound
from tailormail.journeys import model as m
from tailormail.journeys.engine import SendPolicy
from tailormail.journeys.parse import parse_journey
from tailormail.segments import definitions as seg
from tailormail.segments import rules as r
from tailormail.segments.parse import suggest
from tailormail.segments.yamlsource import load_yaml

FOLDER = "journeys"


def load_journeys(workspace: Path | Settings) -> dict[str, m.Journey]:
    """Every journey in the workspace, validated, with segment references in branches inlined."""
    settings = workspace if isinstance(workspace, Settings) else load_settings(workspace)
    names = seg.event_settings(settings)
    base = Path(settings.workspace) / FOLDER
    files = sorted([*base.glob("*.yaml"), *base.glob("*.yml")]) if base.exists() else []
    segments = seg.load_segments(settings) if files else {}
    found: dict[str, m.Journey] = {}
    for path in files:
        doc = load_yaml(path.read_text(encoding="utf-8"), str(path.relative_to(settings.workspace)))
        found[path.stem] = inline_segments(parse_journey(doc, path.stem, names), segments)
    return found


def get_journey(journeys: dict[str, m.Journey], name: str) -> m.Journey:
    """One journey by name, or NotFound with the closest name."""
    if name in journeys:
        return journeys[name]
    close = suggest(name, list(journeys))
    raise NotFound(f"no journey named {name!r}", hint=f"did you mean {close!r}?" if close else "see `journeys list`")


def inline_segments(journey: m.Journey, segments: dict[str, seg.Segment]) -> m.Journey:
    """Branch rules may name segments; resolve them as segment definitions are resolved."""
    nodes = dict(journey.nodes)
    for node_id, node in journey.nodes.items():
        if isinstance(node, m.Branch) and any(isinstance(n, r.SegmentRef) for n in r.walk(node.rule)):
            probe = f"__journey_{journey.name}_{node_id}"
            resolved = seg.resolve({**segments, probe: seg.Segment(probe, "", node.rule, source=journey.source)})
            nodes[node_id] = dataclasses.replace(node, rule=resolved[probe].rule)
    return dataclasses.replace(journey, nodes=nodes)


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def send_policy(settings: Settings) -> SendPolicy:
    """The workspace's send rules from ``[journeys]``: frequency_cap, frequency_days, quiet_hours."""
    section = settings.section("journeys")
    defaults = SendPolicy()
    cap, days = section.get("frequency_cap", defaults.cap_count), section.get("frequency_days", defaults.cap_days)
    for field, value in (("frequency_cap", cap), ("frequency_days", days)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"tailormail.toml: [journeys] {field} must be a whole number of 1 or more", hint="e.g. 3")
    quiet = str(section.get("quiet_hours", f"{defaults.quiet_start}-{defaults.quiet_end}")).strip()
    if quiet.lower() in ("off", "none", ""):
        return SendPolicy(cap, days, "00:00", "00:00")  # an empty window: never quiet
    start, _, end = quiet.partition("-")
    if not (_HHMM.match(start.strip()) and _HHMM.match(end.strip())):
        raise ConfigError(
            f"tailormail.toml: [journeys] quiet_hours {quiet!r} is not HH:MM-HH:MM", hint='e.g. "21:00-08:00" or "off"'
        )
    return SendPolicy(cap, days, start.strip(), end.strip())
