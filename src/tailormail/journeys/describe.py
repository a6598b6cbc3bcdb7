"""Journeys in words: the entry, each node, and the tree a person can follow."""

from __future__ import annotations

from tailormail.journeys import model as m


def entry_text(entry: m.Entry) -> str:
    """The entry as a sentence fragment."""
    if isinstance(entry, m.EventEntry):
        return f"performs {entry.event}" + (" (filtered)" if entry.where else "")
    if isinstance(entry, m.SegmentEntry):
        return f"{entry.on} segment {entry.segment}"
    if isinstance(entry, m.DateEntry):
        return f"{'.'.join(entry.trait)} comes round, at {entry.at_local} local time"
    if isinstance(entry, m.InactivityEntry):
        return f"inactive for {entry.days} days"
    return f"broadcast to {entry.segment}"


def node_text(node: m.Node) -> str:
    """One node as a short phrase."""
    if isinstance(node, m.Send):
        variants = f" ({len(node.subject_variants)} subject variants)" if node.subject_variants else ""
        return f"send {node.template}{variants}"
    if isinstance(node, m.Wait):
        if node.duration_ms is not None:
            return f"wait {_duration(node.duration_ms)}"
        return (
            f"wait until {node.until_local} local"
            if node.until_local
            else f"wait until {'.'.join(node.until_trait or ())}"
        )
    if isinstance(node, m.WaitFor):
        return f"wait up to {_duration(node.timeout_ms)} for {node.event}"
    if isinstance(node, m.Branch):
        return "branch on a rule"
    if isinstance(node, m.Split):
        arms = ", ".join(f"{a.name} {a.weight:g}" for a in node.arms)
        return f"split {arms}" + (f", holdout {node.holdout:g}" if node.holdout else "")
    if isinstance(node, m.UpdateProfile):
        return f"set {', '.join(node.traits)}"
    if isinstance(node, m.Webhook):
        return f"webhook {node.url}"
    return "exit"


def outcomes(node: m.Node) -> list[tuple[str, str | None]]:
    """(label, target) of each way out of a node."""
    if isinstance(node, m.Branch):
        return [("yes", node.then), ("no", node.otherwise)]
    if isinstance(node, m.WaitFor):
        return [("received", node.then), ("timed out", node.otherwise)]
    if isinstance(node, m.Split):
        return [(a.name, a.next) for a in node.arms] + ([("holdout", None)] if node.holdout else [])
    if isinstance(node, m.Exit):
        return []
    return [("", node.next)]


def _duration(ms: int) -> str:
    for unit, size in (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000)):
        if ms % size == 0:
            n = ms // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{ms / 1000:g} seconds"
