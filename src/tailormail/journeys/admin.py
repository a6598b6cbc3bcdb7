"""What the CLI and the API show and change about journeys: overviews, details, files, pause/resume."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from sqlalchemy import Connection

from tailormail.config import Settings
from tailormail.errors import ValidationError
from tailormail.journeys import describe as d
from tailormail.journeys import model as m
from tailormail.journeys.definitions import FOLDER, get_journey, inline_segments, load_journeys
from tailormail.journeys.parse import parse_journey
from tailormail.segments import definitions as seg
from tailormail.segments.yamlsource import from_json
from tailormail.store import Store
from tailormail.store import journeys as q

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,120}$")
OVERVIEW_COLUMNS = ("journey", "entry", "kind", "state", "in progress", "runs")


def overview(settings: Settings, conn: Connection) -> list[dict[str, Any]]:
    """Every journey: its entry in words, kind, live or paused, runs in progress and in all."""
    journeys = load_journeys(settings)
    paused = q.paused_journeys(conn)
    rows = []
    for journey in journeys.values():
        totals = q.run_totals(conn, journey.name)
        in_progress = totals.get("waiting", 0) + totals.get("active", 0)
        state = "paused" if journey.name in paused else "live"
        values = (journey.name, d.entry_text(journey.entry), journey.kind, state, in_progress, sum(totals.values()))
        rows.append(dict(zip(OVERVIEW_COLUMNS, values, strict=True)))
    return rows


def detail(settings: Settings, conn: Connection, name: str) -> dict[str, Any]:
    """One journey: entry, goal, each step in words with its ways on and how many are at and passed it."""
    journey = get_journey(load_journeys(settings), name)
    counts = q.node_counts(conn, name)
    nodes = {
        node_id: {
            "step": d.node_text(node),
            "next": [{"when": text, "to": target} for text, target in d.outcomes(node)],
            "at": counts.get(node_id, (0, 0))[0],
            "passed": counts.get(node_id, (0, 0))[1],
        }
        for node_id, node in journey.nodes.items()
    }
    return {
        "journey": name,
        "entry": d.entry_text(journey.entry),
        "goal": journey.goal,
        "kind": journey.kind,
        "paused": name in q.paused_journeys(conn),
        "start": journey.start,
        "nodes": nodes,
        "runs": q.run_totals(conn, name),
    }


def write_journey(settings: Settings, name: str, document: Any) -> m.Journey:
    """Validate a journey given as JSON (the YAML file's shape) and write ``journeys/NAME.yaml``."""
    if not _NAME.match(name):
        raise ValidationError(f"journey name {name!r} is not allowed", field="name", hint="letters, digits, _ and -")
    if not isinstance(document, dict):
        raise ValidationError("a journey is a JSON object with entry and steps", field="body")
    source = f"{FOLDER}/{name}.yaml"
    journey = parse_journey(from_json(document, source), name, seg.event_settings(settings))
    journey = inline_segments(journey, seg.load_segments(settings))  # unknown segment names fail here
    path = settings.workspace / FOLDER / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False), encoding="utf-8")
    return journey


def delete_journey(settings: Settings, name: str) -> None:
    """Remove a journey's file (runs and logs stay for the reports; no one new enters)."""
    get_journey(load_journeys(settings), name)
    for suffix in (".yaml", ".yml"):
        path = settings.workspace / FOLDER / f"{name}{suffix}"
        if path.exists():
            path.unlink()


def set_paused(store: Store, settings: Settings, name: str, paused: bool, now_ms: int) -> None:
    """Pause (no one enters, waiting runs hold) or resume a journey."""
    get_journey(load_journeys(settings), name)
    with store.begin() as conn:
        q.set_paused(conn, name, paused, now_ms)
