"""Rendering a template for sample profiles with every placeholder marked.

Before rendering, each output statement (``{{ x }}``) is wrapped in invisible
markers that carry its file and line.  After rendering, an empty marked span
is a placeholder that rendered empty, and any problem found in the text can be
placed at the line of the placeholder nearest to it.  The markers are control
characters no template contains; they are removed before HTML checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from liquid import DictLoader, Environment
from pybars import Compiler

OPEN, MID, CLOSE = "\x1e", "\x1f", "\x1d"
_MARK = re.compile(f"{OPEN}(\\d+){MID}(.*?){CLOSE}", re.S)
_LIQUID_OUTPUT = re.compile(r"\{\{-?(.+?)-?\}\}", re.S)
_LIQUID_VERBATIM = re.compile(r"\{%-?\s*(raw|comment)\s*-?%\}.*?\{%-?\s*end\1\s*-?%\}", re.S)
_HBS_OUTPUT = re.compile(r"\{\{\{?\s*([^#/>!^{\s][^}]*?)\s*\}?\}\}")


@dataclass(frozen=True)
class Placeholder:
    """One output statement as rendered: where it is, what it said, what came out."""

    file: str
    line: int
    expression: str
    value: str
    offset: int
    """Where its value starts in the clean rendered text."""


@dataclass
class Rendered:
    """A template rendered for one sample: clean text plus its placeholders."""

    text: str
    placeholders: list[Placeholder] = field(default_factory=list)

    def line_near(self, offset: int) -> tuple[str, int] | None:
        """(file, line) of the placeholder closest to ``offset`` in the clean text."""
        if not self.placeholders:
            return None
        nearest = min(self.placeholders, key=lambda p: (abs(p.offset - offset), p.offset > offset))
        return nearest.file, nearest.line


@dataclass
class Marks:
    """The output statements wrapped so far: id -> (file, line, statement text)."""

    places: list[tuple[str, int, str]] = field(default_factory=list)

    def instrument(self, source: str, file: str, language: str) -> str:
        """Wrap every output statement of ``source`` in markers carrying its id."""
        pattern = _HBS_OUTPUT if language == "handlebars" else _LIQUID_OUTPUT
        verbatim = [] if language == "handlebars" else [m.span() for m in _LIQUID_VERBATIM.finditer(source)]

        def wrap(match: re.Match[str]) -> str:
            if any(start <= match.start() < end for start, end in verbatim) or match.group(1).strip() == "else":
                return match.group(0)
            self.places.append((file, source.count("\n", 0, match.start()) + 1, match.group(0)))
            return f"{OPEN}{len(self.places) - 1}{MID}{match.group(0)}{CLOSE}"

        return pattern.sub(wrap, source)

    def collect(self, marked: str) -> Rendered:
        """Remove markers from rendered text, remembering each placeholder's value and place."""
        out: list[str] = []
        placeholders: list[Placeholder] = []
        position = length = 0
        for match in _MARK.finditer(marked):
            before = _strip(marked[position : match.start()])
            value = _strip(match.group(2))
            file, line, expression = self.places[int(match.group(1))]
            placeholders.append(Placeholder(file, line, expression, value, length + len(before)))
            out += [before, value]
            length += len(before) + len(value)
            position = match.end()
        out.append(_strip(marked[position:]))
        return Rendered("".join(out), placeholders)


def _strip(text: str) -> str:
    # Nested markers (a placeholder inside a captured value) are dropped, keeping text.
    return _MARK.sub(lambda m: _strip(m.group(2)), text).replace(OPEN, "").replace(MID, "").replace(CLOSE, "")


Renderer = Callable[[dict[str, object]], str]


def liquid_renderer(body: str, partials: dict[str, str]) -> Renderer:
    """A function rendering Liquid ``body`` (blocks loaded from ``partials``) for a context."""
    env = Environment(loader=DictLoader(partials), autoescape=True)
    template = env.from_string(body)
    return lambda context: template.render(**context)


def handlebars_renderer(body: str, partials: dict[str, str]) -> Renderer:
    """A function rendering Handlebars ``body`` (blocks from ``partials``) for a context."""
    compiler = Compiler()
    compiled = {name: compiler.compile(text) for name, text in partials.items()}
    template = compiler.compile(body)
    return lambda context: str(template(context, partials=compiled))
