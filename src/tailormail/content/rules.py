"""Content rules: block variant rules written in the segment rule language.

A variant's ``rule`` is the same YAML a segment's ``rule`` is (trait, event,
profile, all/any/not, ``segment: NAME``).  It is validated when the template
compiles and evaluated by the segment engine for all recipients of a batch
at once: one ``matching_profiles`` call per variant rule, never per person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from tailormail.config import Settings, load_settings
from tailormail.content.templates import Block
from tailormail.segments import rules as r
from tailormail.segments.definitions import Segment, event_settings, load_segments, resolve
from tailormail.segments.evaluate import matching_profiles
from tailormail.segments.parse import RuleParser
from tailormail.segments.yamlsource import from_json
from tailormail.store import segments as segment_store

_VARIANT = "__variant__"


def parse_variant_rule(
    rule: Mapping[str, Any], source: str, settings: Settings, known: Mapping[str, Segment]
) -> r.Condition:
    """Validate one variant rule and inline the segments it refers to."""
    parsed = RuleParser(from_json(dict(rule), source), event_settings(settings)).condition(dict(rule), ("rule",))
    if not any(isinstance(n, r.SegmentRef) for n in r.walk(parsed)):
        return parsed
    wrapper = Segment(_VARIANT, "", parsed, source=source)
    return resolve({**known, _VARIANT: wrapper})[_VARIANT].rule


def check_block_rules(workspace: Path, blocks: Iterable[Block]) -> None:
    """Raise a ValidationError naming the block file and variant if any rule is invalid."""
    with_variants = [b for b in blocks if b.variants]
    if not with_variants:
        return
    settings = load_settings(workspace)
    known = load_segments(settings)
    for block in with_variants:
        for index, variant in enumerate(block.variants):
            parse_variant_rule(variant.rule, f"{block.path} variants[{index}] ({variant.name})", settings, known)


def segment_evaluator(
    conn: Connection, settings: Settings, now_ms: int, match: Callable[..., set[int]] = matching_profiles
) -> Callable[[dict[str, Any], Sequence[int]], set[int]]:
    """A RuleEvaluator backed by the segment engine (rules parsed once per batch)."""
    known = load_segments(settings)
    parsed: dict[str, r.Condition] = {}

    def evaluate(rule: dict[str, Any], profile_ids: Sequence[int]) -> set[int]:
        key = repr(sorted(rule.items()))
        if key not in parsed:
            parsed[key] = parse_variant_rule(rule, "block variant", settings, known)
        return set(match(conn, parsed[key], now_ms=now_ms, profile_ids=list(profile_ids), settings=settings))

    return evaluate


def memberships(conn: Connection, profile_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each person's current segments (one query per segment, for the whole batch)."""
    found: dict[int, list[str]] = {pid: [] for pid in profile_ids}
    for name in sorted(segment_store.sizes(conn)):
        for pid in segment_store.current_members(conn, name, profile_ids):
            found[pid].append(name)
    return found


def segment_names(conn: Connection) -> list[str]:
    """Every segment with members (so ``segment.NAME`` is false, not missing, for the rest)."""
    return sorted(segment_store.sizes(conn))
