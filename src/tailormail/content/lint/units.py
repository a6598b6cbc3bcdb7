"""The pieces of source a template is made of, each with its file and true line numbers.

A unit is the template's body, a block's body or one variant's content.  Its
text is padded with blank lines so that a line counted in the text is the line
in the file: every check can then count newlines and be right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tailormail.content.engines import LANGUAGES, Language, TemplateError
from tailormail.content.templates import read_source

INCLUDE = {
    "liquid": re.compile(r"\{%-?\s*(?:render|include)\s+['\"]([A-Za-z0-9_-]+)['\"]"),
    "handlebars": re.compile(r"\{\{>\s*([A-Za-z0-9_-]+)"),
}
"""How a template or block names the blocks it uses (see content.blocks)."""


@dataclass(frozen=True)
class Unit:
    """One piece of source: file (relative to the workspace), padded text, block and variant."""

    file: str
    text: str
    block: str | None = None
    variant: str | None = None


def relative(path: Path, root: Path) -> str:
    """``path`` relative to the workspace when inside it."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def language_of(path: Path) -> Language | None:
    """The template language of a file name, None for other files."""
    return LANGUAGES.get(path.suffix.lower())


def template_unit(path: Path, root: Path) -> Unit:
    """The template's body, front matter blanked out (raises TemplateError on bad front matter)."""
    source = read_source(path)
    return Unit(relative(path, root), "\n" * (source.body_line - 1) + source.body)


def subject_line(path: Path) -> int:
    """The line of ``subject:`` in a template's front matter (1 when absent)."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("subject:"):
            return number
    return 1


def block_units(root: Path, name: str, language: Language) -> list[Unit]:
    """A block's body and each variant's content (the block in the template's language first)."""
    folder = root / "blocks"
    own = folder / f"{name}{language.extension}"
    candidates = [own] + [folder / f"{name}{ext}" for ext in LANGUAGES]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise TemplateError(f"block {name!r} not found", source="blocks", hint=f"create blocks/{name}.liquid or .hbs")
    source = read_source(path)
    file, whole = relative(path, root), path.read_text(encoding="utf-8")
    units = [Unit(file, "\n" * (source.body_line - 1) + source.body, block=name)]
    for raw in source.meta.get("variants") or []:
        if isinstance(raw, dict) and isinstance(raw.get("content"), str):
            line = _line_of(whole, raw["content"])
            units.append(Unit(file, "\n" * (line - 1) + raw["content"], block=name, variant=str(raw.get("name"))))
    return units


def _line_of(whole: str, content: str) -> int:
    """Where a variant's content starts in its file (its first non-blank line, found as written)."""
    first = next((line.strip() for line in content.splitlines() if line.strip()), "")
    at = whole.find(first) if first else -1
    return whole.count("\n", 0, at) + 1 if at >= 0 else 1


def units_of(template: Unit, root: Path, language: Language) -> list[Unit]:
    """The template and every block it uses, directly or through other blocks."""
    units, seen, pending = [template], set(), [template]
    while pending:
        unit = pending.pop(0)
        for name in INCLUDE[language.name].findall(unit.text):
            if name not in seen:
                seen.add(name)
                found = block_units(root, name, language)
                units += found
                pending += found
    return units
