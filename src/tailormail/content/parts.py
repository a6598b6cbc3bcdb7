"""A compiled skeleton as a list of parts: static text, fast outputs and islands.

Per recipient only the dynamic parts run.  A plain output of a dotted path
(``{{ customer.firstName }}``) is looked up and escaped directly, exactly as
the language would; every other top-level construct (a condition, a loop, a
filtered output) is an *island*: a fragment compiled once by the language,
whose output is reused for every recipient with the same values of the paths
it reads.  Variants and most conditions depend on a handful of values, so the
template engine runs only a few times per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tailormail.content.engines import (
    CLOSE,
    MIDDLE,
    OPEN,
    OUTPUT,
    STATEFUL,
    Language,
    Render,
    Tag,
    TemplateError,
    error_at,
)

_MISSING = object()
ISLAND_CACHE_SIZE = 4096
"""Outputs kept per island; bounds memory when a fragment reads a per-person value."""


@dataclass
class Output:
    """A plain ``{{ a.b.c }}``: looked up and escaped without the template engine."""

    path: tuple[str | int, ...]
    escape: Any
    fallback: Render

    def render(self, context: dict[str, Any]) -> str:
        """The value as the language would print it."""
        value: Any = context
        for key in self.path:
            if value.__class__ is dict:
                value = value.get(key, _MISSING)
            elif value.__class__ is list and key.__class__ is int:
                value = value[key] if -len(value) <= key < len(value) else _MISSING  # type: ignore[operator]
            else:
                return self.fallback(context)
            if value is _MISSING:
                return ""
        if value is None:
            return ""
        if isinstance(value, str):
            return self.escape(value) if self.escape else value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.fallback(context)  # floats, booleans, lists: let the language format them


@dataclass
class Island:
    """A condition, loop or filtered output, rendered by the language and cached by its inputs."""

    source: str
    run: Render
    dependencies: list[tuple[str | int, ...]] | None
    cache: dict[Any, str] = field(default_factory=dict)

    def render(self, context: dict[str, Any]) -> str:
        """The fragment's output for this context (from cache when its inputs were seen)."""
        if self.dependencies is None:
            return self.run(context)
        key = repr([_lookup(context, path) for path in self.dependencies])
        hit = self.cache.get(key)
        if hit is None:
            hit = self.run(context)
            if len(self.cache) >= ISLAND_CACHE_SIZE:
                self.cache.clear()
            self.cache[key] = hit
        return hit


def _lookup(context: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    value: Any = context
    for key in path:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int):
            value = value[key] if -len(value) <= key < len(value) else None
        else:
            return value
    return value


@dataclass
class Fragment:
    """A compiled text: render it with a context per recipient."""

    parts: list[Any]
    source: str

    def render(self, context: dict[str, Any]) -> str:
        """The text for one recipient."""
        return "".join([p if p.__class__ is str else p.render(context) for p in self.parts])


def split(source: str, language: Language, *, escape: bool, where: str) -> Fragment:
    """Compile ``source`` into parts (static text, outputs, islands)."""
    tags = language.tags(source)
    parts: list[Any] = []
    last = 0
    index = 0
    while index < len(tags):
        tag = tags[index]
        parts.append(source[last : tag.start])
        end_index = _island_end(tags, index, source, where)
        end = len(source) if end_index is None else tags[end_index].end
        text = source[tag.start : end]
        compiled = language.compile(text, escape=escape, where=where)
        if end_index == index and tag.kind == OUTPUT and tag.path:
            parts.append(Output(tag.path, language.escape if escape else None, compiled))
        else:
            parts.append(Island(text, compiled, language.dependencies(text)))
        last = end
        index = len(tags) if end_index is None else end_index + 1
    parts.append(source[last:])
    return Fragment([p for p in parts if p != ""], source)


def _island_end(tags: Sequence[Tag], start: int, source: str, where: str) -> int | None:
    """Index of the tag closing the island opened at ``start`` (None: runs to the end)."""
    kind = tags[start].kind
    if kind == STATEFUL:
        return None  # assign/capture change what later text prints: keep the rest together
    if kind in (MIDDLE, CLOSE):
        raise _unbalanced(tags[start], source, where)
    if kind != OPEN:
        return start
    depth = 0
    for index in range(start, len(tags)):
        if tags[index].kind == OPEN:
            depth += 1
        elif tags[index].kind == CLOSE:
            depth -= 1
            if depth == 0:
                return index
        elif tags[index].kind == STATEFUL:
            return None
    raise _unbalanced(tags[start], source, where)


def _unbalanced(tag: Tag, source: str, where: str) -> TemplateError:
    return error_at(
        source,
        tag.start,
        where,
        f"{tag.text} has no matching opening or closing tag",
        "close every if/for/unless (Liquid) or #if/#each (Handlebars)",
    )
