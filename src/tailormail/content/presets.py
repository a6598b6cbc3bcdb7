"""The content files `tailormail init` writes: a layout, six blocks and one template per preset segment."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FOLDERS = {"layouts": "templates/layouts", "blocks": "blocks", "templates": "templates"}
"""Preset folder in the package -> folder in the workspace."""


def write_content_presets(root: Path) -> list[Path]:
    """Copy the preset layout, blocks and templates that do not exist yet; return those written."""
    written = []
    base = resources.files("tailormail.content").joinpath("preset_files")
    for source, target in FOLDERS.items():
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for item in sorted(base.joinpath(source).iterdir(), key=lambda p: p.name):
            path = folder / item.name
            if item.is_file() and not path.exists():
                path.write_text(item.read_text(encoding="utf-8"), encoding="utf-8")
                written.append(path)
    return written
