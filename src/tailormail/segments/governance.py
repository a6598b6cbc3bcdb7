"""Keeping segments few and useful: overlap, and the doctor's findings with suggestions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailormail.config import Settings
from tailormail.segments.definitions import Segment

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Limits:
    """Thresholds of `segments doctor` ([segments] in tailormail.toml)."""

    max_active: int = 15
    """More active segments than this is hard to keep meaningful (keep 10-15 key ones)."""
    tiny_below: int = 100
    """A segment with fewer members is too small to measure an email's effect on."""
    stale_days: int = 30
    """Nobody entered or left for this long: the segment may describe nobody's present."""
    overlap_above: float = 0.9
    """Two segments sharing more than this share of the smaller one say the same thing."""

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """Limits from the [segments] table of tailormail.toml; an unknown key is an error that names it."""
        return settings.table(cls, "segments")


@dataclass(frozen=True)
class Finding:
    """One thing the doctor noticed, with what to do about it."""

    kind: str
    segments: tuple[str, ...]
    message: str
    suggestion: str

    def as_json(self) -> dict[str, Any]:
        """A plain dict for --json and the API."""
        return {
            "kind": self.kind,
            "segments": list(self.segments),
            "message": self.message,
            "suggestion": self.suggestion,
        }


def overlap_matrix(names: list[str], sizes: dict[str, int], shared: dict[tuple[str, str], int]) -> list[list[float]]:
    """Jaccard overlaps |A∩B| / |A∪B| for every pair, in ``names`` order (1 on the diagonal)."""
    matrix = []
    for a in names:
        row = []
        for b in names:
            both = sizes.get(a, 0) if a == b else shared.get((min(a, b), max(a, b)), 0)
            union = sizes.get(a, 0) + sizes.get(b, 0) - both
            row.append(1.0 if a == b else (both / union if union else 0.0))
        matrix.append(row)
    return matrix


def journey_references(workspace: Path) -> str | None:
    """All text of the journeys/ folder (to look for segment names), or None when it has no files."""
    folder = workspace / "journeys"
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files) if files else None


def doctor(
    segments: dict[str, Segment],
    sizes: dict[str, int],
    shared: dict[tuple[str, str], int],
    states: dict[str, dict[str, Any]],
    journeys_text: str | None,
    now_ms: int,
    limits: Limits,
) -> list[Finding]:
    """Everything worth a person's attention, most important first."""
    active = sorted(n for n, s in segments.items() if s.active)
    found: list[Finding] = []
    if len(active) > limits.max_active:
        found.append(
            Finding(
                "too_many",
                tuple(active),
                f"{len(active)} active segments (more than {limits.max_active})",
                "keep 10-15 key segments: retire or merge the ones below",
            )
        )
    used_by_segments = {ref for s in segments.values() for ref in s.references}
    for name in active:
        found.extend(
            _single(name, sizes.get(name, 0), states.get(name), used_by_segments, journeys_text, now_ms, limits)
        )
    found.extend(_overlaps(active, sizes, shared, limits))
    return found


def _single(
    name: str,
    size: int,
    state: dict[str, Any] | None,
    used_by_segments: set[str],
    journeys_text: str | None,
    now_ms: int,
    limits: Limits,
) -> list[Finding]:
    out = []
    if state is None:
        out.append(
            Finding("never_refreshed", (name,), f"{name} was never refreshed", "run `tailormail segments refresh`")
        )
        return out
    if size < limits.tiny_below:
        out.append(
            Finding(
                "tiny",
                (name,),
                f"{name} has {size} members (under {limits.tiny_below})",
                "widen its rule, merge it into a broader segment, or retire it",
            )
        )
    last_change = state.get("changed_at") or state.get("refreshed_at") or 0
    if now_ms - last_change > limits.stale_days * DAY_MS:
        days = (now_ms - last_change) // DAY_MS
        out.append(
            Finding(
                "unchanged",
                (name,),
                f"nobody entered or left {name} for {days} days",
                "check its rule still describes current behaviour, or retire it",
            )
        )
    in_journeys = journeys_text is not None and re.search(rf"\b{re.escape(name)}\b", journeys_text)
    if not in_journeys and name not in used_by_segments:
        where = "any journey or campaign" if journeys_text is not None else "any journey or campaign (none exist yet)"
        out.append(Finding("unused", (name,), f"{name} is unused by {where}", "use it in a journey, or retire it"))
    return out


def _overlaps(
    active: list[str], sizes: dict[str, int], shared: dict[tuple[str, str], int], limits: Limits
) -> list[Finding]:
    out = []
    for (a, b), both in sorted(shared.items()):
        if a not in active or b not in active:
            continue
        smaller = min(sizes.get(a, 0), sizes.get(b, 0))
        if smaller and both / smaller > limits.overlap_above:
            inner, outer = (a, b) if sizes.get(a, 0) <= sizes.get(b, 0) else (b, a)
            out.append(
                Finding(
                    "overlap",
                    (a, b),
                    f"{both / smaller:.0%} of {inner} is also in {outer}",
                    f"merge them, or retire {inner} and use {outer}",
                )
            )
    return out


def heatmap_png(names: list[str], matrix: list[list[float]], path: Path) -> Path:
    """Draw the overlap matrix as a heatmap PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.7 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
    ax.set_title("Segment overlap (Jaccard)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
