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

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
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
SLOT_OPEN, SLOT_MID, SLOT_CLOSE = "\ue000", "\ue001", "\ue002"
SLOT = re.compile("\ue000(\\d+)\ue001([^\ue002]*)\ue002")
"""A link slot in a skeleton: slot id, then the href as written (tags included)."""

Signer = Callable[[int, str], str]
"""(slot id, the link's URL for this recipient) -> the URL to put in the mail."""
ISLAND_CACHE_SIZE = 4096
"""Outputs kept per island; bounds memory when a fragment reads a per-person value."""


@dataclass
class Output:
    """A plain ``{{ a.b.c }}``: looked up and escaped without the template engine."""

    path: tuple[str | int, ...]
    escape: Any
    fallback: Render
    default: str | None = None
    """Liquid's ``| default: "text"``: printed when the value is missing, empty or false."""

    def render(self, context: dict[str, Any]) -> str:
        """The value as the language would print it."""
        value: Any = context
        for key in self.path:
            kind = value.__class__
            if kind is dict:
                value = value.get(key, _MISSING)
                if value is _MISSING:
                    return self._empty()
            elif kind is list and key.__class__ is int:
                try:
                    value = value[key]  # Python's indexing is Liquid's: -len <= key < len
                except IndexError:
                    return self._empty()
            else:
                return self.fallback(context)
        if value.__class__ is str:
            if value == "" and self.default is not None:
                return self._empty()
            return self.escape(value) if self.escape else value
        if value is None or (self.default is not None and (value is False or value == "" or value == [])):
            return self._empty()
        if isinstance(value, str):
            return self.escape(value) if self.escape else value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.fallback(context)  # floats, booleans, lists: let the language format them

    def _empty(self) -> str:
        return self.default or ""  # a literal written by the template's author: never escaped

    def pieces(self, context: dict[str, Any], sign: Signer | None, out: list[str]) -> None:
        """Append the value."""
        out.append(self.render(context))


@dataclass
class Island:
    """A condition, loop or filtered output, rendered by the language and cached by its inputs."""

    source: str
    run: Render
    dependencies: list[tuple[str | int, ...]] | None
    escape: bool = True
    cache: dict[Any, str] = field(default_factory=dict)
    links: dict[str, list[str | tuple[int, str]]] = field(default_factory=dict)
    """An output with links -> its text pieces and (slot id, URL as written) between them."""
    truth_path: tuple[str, ...] | None = None
    """For a Liquid test ``{% if a.b %}``: the path, decided here for plain values (see ``_truth``)."""

    def render(self, context: dict[str, Any]) -> str:
        """The fragment's output for this context (from cache when its inputs were seen)."""
        if self.truth_path is not None:
            decided = _truth(context, self.truth_path)
            if decided is not None:
                return decided
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

    def pieces(self, context: dict[str, Any], sign: Signer | None, out: list[str]) -> None:
        """Append the output, with links inside it (a loop's links) signed.

        The text between links goes out as the same string objects every time the
        output repeats, and each signed URL as a piece of its own, so MIME encoding
        reuses the text's encoding and encodes only the URLs (see ``mime.qp_pieces``).
        """
        text = self.render(context)
        if sign is None or SLOT_OPEN not in text:
            out.append(text)
            return
        split_text = self.links.get(text)
        if split_text is None:
            if len(self.links) >= ISLAND_CACHE_SIZE:
                self.links.clear()
            split_text = self.links[text] = _split_links(text, self.escape)
        for item in split_text:
            if isinstance(item, str):
                out.append(item)
            else:
                signed = sign(*item)
                out.append(_escape_url(signed) if self.escape else signed)


def _truth(context: dict[str, Any], path: tuple[str, ...]) -> str | None:
    """``{% if path %}`` as Liquid decides it ("1" or ""), or None when the engine must decide.

    Liquid holds only nil and false false: every string (even ""), number and
    true is true, and a missing key or a key of nil is nil.  Variant flags and
    per-person links decide here without the engine or the output cache.
    """
    value: Any = context
    for key in path:
        if value.__class__ is not dict:
            return "" if value is None else None  # nil.anything is nil; a list's .first: ask the engine
        value = value.get(key)
    kind = value.__class__
    if kind is str or kind is int or value is True:
        return "1"
    if value is None or value is False:
        return ""
    return None


_LIST_PROPERTIES = {"size": len, "first": lambda v: v[0] if v else None, "last": lambda v: v[-1] if v else None}


def _lookup(context: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    value: Any = context
    for key in path:
        if value.__class__ is dict or isinstance(value, dict):
            if key in _LIST_PROPERTIES and key not in value:
                return value  # Liquid's .first/.size of a mapping: key the cache on all of it
            value = value.get(key)
        elif isinstance(value, list | str) and key in _LIST_PROPERTIES:
            value = _LIST_PROPERTIES[key](value)  # type: ignore[index]
        elif isinstance(value, list) and isinstance(key, int):
            value = value[key] if -len(value) <= key < len(value) else None
        else:
            return value
    return value


@dataclass
class Conditional:
    """``if``/``elsif``/``else``: each test is a tiny cached island, each branch a fragment of parts.

    Splitting the branches too keeps their outputs on the fast path, and the
    tests depend on few values (a variant flag, a location), so they hit the
    cache almost always even when the branch prints per-person values.
    """

    branches: list[tuple[Island | None, Fragment]]
    """(test, body) in order; a None test is ``else``."""

    def render(self, context: dict[str, Any]) -> str:
        """The first branch whose test passes."""
        out: list[str] = []
        self.pieces(context, None, out)
        return "".join(out)

    def pieces(self, context: dict[str, Any], sign: Signer | None, out: list[str]) -> None:
        """Append the pieces of the first branch whose test passes."""
        for test, body in self.branches:
            if test is None or test.render(context):
                body.pieces(context, sign, out)
                return


@dataclass
class Link:
    """A link slot: its URL rendered for the recipient, then signed (tracked) by the injected signer."""

    slot: int
    url: Fragment
    escape: bool

    def __post_init__(self) -> None:
        parts = self.url.parts
        # Most URLs are one static string or one output: skip the general join for them.
        self.static_url = parts[0] if len(parts) == 1 and parts[0].__class__ is str else ("" if not parts else None)
        self._single = parts[0] if len(parts) == 1 and parts[0].__class__ is not str else None

    def render(self, context: dict[str, Any]) -> str:
        """The URL as the template wrote it, without signing."""
        if self.static_url is not None:
            return self.static_url
        return self._single.render(context) if self._single is not None else self.url.render(context)

    def pieces(self, context: dict[str, Any], sign: Signer | None, out: list[str]) -> None:
        """Append the signed URL (HTML-escaped in HTML)."""
        url = self.render(context)
        if sign is None:
            out.append(url)
        elif self.escape:
            signed = sign(self.slot, html.unescape(url) if "&" in url else url)
            out.append(html.escape(signed) if "&" in signed or '"' in signed or "<" in signed else signed)
        else:
            out.append(sign(self.slot, url))


def _split_links(text: str, escape: bool) -> list[str | tuple[int, str]]:
    """``text`` as static pieces and (slot id, URL) links (the URL unescaped in HTML)."""
    items: list[str | tuple[int, str]] = []
    last = 0
    for match in SLOT.finditer(text):
        if match.start() > last:
            items.append(text[last : match.start()])
        url = match.group(2)
        items.append((int(match.group(1)), html.unescape(url) if escape else url))
        last = match.end()
    if last < len(text):
        items.append(text[last:])
    return items


def _escape_url(url: str) -> str:
    """``html.escape(url)``, skipped for the usual URL that has nothing to escape."""
    if "&" in url or '"' in url or "<" in url or ">" in url or "'" in url:
        return html.escape(url)
    return url


def sign_slots(text: str, sign: Signer, escape: bool) -> str:
    """Replace every slot marker left in ``text`` by its signed URL."""
    if escape:
        return SLOT.sub(lambda m: html.escape(sign(int(m.group(1)), html.unescape(m.group(2)))), text)
    return SLOT.sub(lambda m: sign(int(m.group(1)), m.group(2)), text)


@dataclass
class Fragment:
    """A compiled text: render it with a context per recipient."""

    parts: list[Any]
    source: str
    _fast: Any = field(default=None, init=False, repr=False, compare=False)
    """The generated walk (``fastpath.compile_pieces``), made on first use with a signer."""

    def render(self, context: dict[str, Any]) -> str:
        """The text for one recipient (links as written, not signed)."""
        return "".join([p if p.__class__ is str else p.render(context) for p in self.parts])

    def pieces(self, context: dict[str, Any], sign: Signer | None, out: list[str]) -> None:
        """Append the recipient's pieces: static text as the same string objects, links signed."""
        if sign is None:
            self.walk(context, sign, out)
            return
        fast = self._fast
        if fast is None:
            from tailormail.content.fastpath import compile_pieces  # it builds on this module

            fast = self._fast = compile_pieces(self)
        fast(context, sign, out)

    def walk(self, context: dict[str, Any], sign: Signer | None, out: list[str]) -> None:
        """``pieces`` by walking the parts (what the generated function does, written out)."""
        append = out.append
        for part in self.parts:
            kind = part.__class__
            if kind is str:
                append(part)
            elif kind is Output:
                append(part.render(context))  # the most common part: skip its pieces() hop
            else:
                part.pieces(context, sign, out)


def split(source: str, language: Language, *, escape: bool, where: str) -> Fragment:
    """Compile ``source`` into parts (static text, outputs, conditionals, islands, links)."""
    tags = language.tags(source)
    slots = list(SLOT.finditer(source))
    parts: list[Any] = []
    last = index = 0
    while index < len(tags) or slots:
        tag = tags[index] if index < len(tags) else None
        if slots and (tag is None or slots[0].start() < tag.start):
            slot = slots.pop(0)
            parts.append(source[last : slot.start()])
            url = split(slot.group(2), language, escape=escape, where=where)
            parts.append(Link(int(slot.group(1)), url, escape))
            last = slot.end()
            while index < len(tags) and tags[index].start < last:
                index += 1
            continue
        assert tag is not None
        parts.append(source[last : tag.start])
        end_index = _island_end(tags, index, source, where)
        end = len(source) if end_index is None else tags[end_index].end
        parts.append(_part(tags, index, end_index, source[tag.start : end], source, language, escape, where))
        while slots and slots[0].start() < end:
            slots.pop(0)  # inside the island: signed in its output
        last = end
        index = len(tags) if end_index is None else end_index + 1
    parts.append(source[last:])
    return Fragment([p for p in parts if p != ""], source)


def _part(
    tags: Sequence[Tag], index: int, end_index: int | None, text: str, source: str, language: Language,
    escape: bool, where: str,
) -> Any:  # fmt: skip
    conditional = _conditional(tags, index, end_index, source, language, escape, where)
    if conditional is not None:
        return conditional
    compiled = language.compile(text, escape=escape, where=where)
    tag = tags[index]
    if end_index == index and tag.kind == OUTPUT and tag.path:
        return Output(tag.path, language.escape if escape else None, compiled, tag.default)
    return Island(text, compiled, language.dependencies(text), escape)


def _conditional(
    tags: Sequence[Tag], start: int, end: int | None, source: str, language: Language, escape: bool, where: str
) -> Conditional | None:
    """A Conditional for a top-level if/unless block, or None when it is not one we can split."""
    opening = tags[start]
    if end is None or opening.kind != OPEN or opening.name not in ("if", "unless"):
        return None
    heads, depth = [start], 0
    for index in range(start, end + 1):
        tag = tags[index]
        if "{%-" in tag.text or "-%}" in tag.text or "{{~" in tag.text or "~}}" in tag.text:
            return None  # whitespace control reaches across branch edges: keep the engine's exact output
        depth += (tag.kind == OPEN) - (tag.kind == CLOSE)
        if tag.kind == MIDDLE and depth == 1:
            heads.append(index)
    heads.append(end)
    branches: list[tuple[Island | None, Fragment]] = []
    for head, following in pairwise(heads):
        test = language.branch_test(opening.name, tags[head].text, first=head == start)
        body = split(source[tags[head].end : tags[following].start], language, escape=escape, where=where)
        island = None
        if test is not None:
            island = Island(test, language.compile(test, escape=False, where=where), language.dependencies(test))
            island.truth_path = language.truth_path(opening.name, tags[head].text, first=head == start)
        branches.append((island, body))
    return Conditional(branches)


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
