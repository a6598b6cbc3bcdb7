"""The two template languages behind one interface: Liquid (default) and Handlebars.

Each language knows how to find its tags in a source text, what kind each tag
is (an output, a block opening, a middle such as ``else``, a closing, or a tag
that changes later output such as ``assign``), how to compile a fragment, and
which context paths a fragment reads, so the renderer can reuse a fragment's
output for every recipient whose values for those paths are the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import markupsafe
import pybars
import pybars._compiler
from liquid import Environment
from liquid.exceptions import LiquidError

from tailormail.errors import ValidationError

Render = Callable[[dict[str, Any]], str]
"""A compiled fragment: context in, text out."""

OUTPUT, OPEN, MIDDLE, CLOSE, STATEFUL, OPAQUE = "output", "open", "middle", "close", "stateful", "opaque"

ROOTS = frozenset(
    {
        "customer",
        "user",
        "segment",
        "predicted",
        "purchase_history",
        "recommendations",
        "event",
        "campaign",
        "links",
        "variant",
        "message",
    }
)
"""The top-level names every template sees (see README, "Templates")."""


class TemplateError(ValidationError):
    """A template, block or layout cannot be parsed or compiled."""

    code = "template_error"


def error_at(source: str, position: int, where: str, message: str, hint: str, first_line: int = 1) -> TemplateError:
    """A TemplateError naming the file and the line of ``position`` in ``source`` (which starts at ``first_line``)."""
    line = source.count("\n", 0, position) + first_line
    return TemplateError(f"{where}: line {line}: {message}", line=line, source=where, hint=hint)


@dataclass(frozen=True)
class Tag:
    """One tag found in a source: its text, span and kind."""

    text: str
    start: int
    end: int
    kind: str
    name: str = ""
    path: tuple[str | int, ...] | None = None
    """For a plain output of a dotted path with no filter: that path (fast path)."""
    default: str | None = None
    """For ``{{ path | default: "text" }}``: the text (fast path too)."""


_LIQUID_TAG = re.compile(
    r"\{%-?\s*(raw|comment)\s*-?%\}.*?\{%-?\s*end\1\s*-?%\}|\{\{-?.*?-?\}\}|\{%-?.*?-?%\}",
    re.DOTALL,
)
_HBS_TAG = re.compile(r"\{\{!--.*?--\}\}|\{\{\{.*?\}\}\}|\{\{.*?\}\}", re.DOTALL)
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_INDEXED_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*$")
_LIQUID_BLOCKS = {"if", "unless", "for", "case", "tablerow", "capture"}
_LIQUID_MIDDLE = {"else", "elsif", "when"}
_LIQUID_SPECIAL = frozenset({"size", "first", "last", "empty", "blank", "nil", "null", "true", "false"})
_LIQUID_STATEFUL = {"assign", "capture", "increment", "decrement", "cycle", "liquid"}


class Language:
    """What the compiler needs to know about one template language."""

    name = ""
    extension = ""

    def tags(self, source: str) -> list[Tag]:
        """Every tag in ``source``, in order."""
        raise NotImplementedError

    def compile(self, source: str, *, escape: bool, where: str) -> Render:
        """Compile a fragment; ``escape`` False for plain-text parts and subjects."""
        raise NotImplementedError

    def dependencies(self, source: str) -> list[tuple[str | int, ...]] | None:
        """The context paths a fragment reads, or None when they cannot be known."""
        raise NotImplementedError

    def escape(self, value: str) -> str:
        """HTML-escape a value exactly as the language's own output does."""
        raise NotImplementedError

    def condition(self, flag: str, then: str, otherwise: str) -> str:
        """Source that renders ``then`` when context path ``flag`` is true, else ``otherwise``."""
        raise NotImplementedError

    def branch_test(self, block: str, head: str, *, first: bool) -> str | None:
        """A fragment printing "1" when the branch opened by ``head`` is taken (None: ``else``)."""
        raise NotImplementedError

    def truth_path(self, block: str, head: str, *, first: bool) -> tuple[str, ...] | None:
        """For a branch taken when a path's value is truthy (``{% if a.b %}``): that path; else None."""
        return None


class Liquid(Language):
    """Liquid through python-liquid 2 (autoescaped HTML, plain text without escaping)."""

    name = "liquid"
    extension = ".liquid"

    def __init__(self) -> None:
        self._html = Environment(autoescape=True)
        self._text = Environment(autoescape=False)

    def tags(self, source: str) -> list[Tag]:
        """Every Liquid tag in ``source``, in order."""
        found = []
        for match in _LIQUID_TAG.finditer(source):
            text = match.group(0)
            found.append(Tag(text, match.start(), match.end(), *_liquid_kind(text)))
        return found

    def compile(self, source: str, *, escape: bool, where: str) -> Render:
        """Parse a Liquid fragment once; the result renders a context dict."""
        try:
            template = (self._html if escape else self._text).from_string(source)
        except LiquidError as exc:
            raise TemplateError(f"{where}: {exc}", source=where, hint="fix the Liquid syntax") from exc
        return lambda context: template.render(**context)

    def dependencies(self, source: str) -> list[tuple[str | int, ...]] | None:
        """Global variable paths read by the fragment (python-liquid's static analysis)."""
        try:
            analysis = self._html.from_string(source).analyze()
        except LiquidError:
            return None
        paths: set[tuple[str | int, ...]] = set()
        for variables in analysis.globals.values():
            for variable in variables:
                prefix: list[str | int] = []
                for segment in variable.segments:
                    if not isinstance(segment, str | int):
                        break  # a computed index: depend on the whole object before it
                    prefix.append(segment)
                paths.add(tuple(prefix))
        return sorted(paths, key=repr)

    def escape(self, value: str) -> str:
        """Escape like python-liquid's autoescape (markupsafe), without building a Markup per value."""
        if value.__class__ is not str:
            return str(markupsafe.escape(value))  # a str subclass may carry __html__
        if "&" in value or "<" in value or ">" in value or "'" in value or '"' in value:
            return value.translate(_MARKUPSAFE)
        return value

    def condition(self, flag: str, then: str, otherwise: str) -> str:
        """``{% if flag %}then{% else %}otherwise{% endif %}``."""
        return f"{{% if {flag} %}}{then}{{% else %}}{otherwise}{{% endif %}}"

    def branch_test(self, block: str, head: str, *, first: bool) -> str | None:
        """``{% if c %}1{% endif %}`` for ``{% if c %}`` / ``{% elsif c %}`` (``unless`` kept)."""
        inner = head[2:-2].strip()
        name, _, condition = inner.partition(" ")
        if name == "else":
            return None
        keyword = block if first else "if"
        return f"{{% {keyword} {condition.strip()} %}}1{{% end{keyword} %}}"

    def truth_path(self, block: str, head: str, *, first: bool) -> tuple[str, ...] | None:
        """``{% if a.b %}`` / ``{% elsif a.b %}``: ("a", "b") (plain truthiness, see ``parts._truth``)."""
        name, _, condition = head[2:-2].strip().partition(" ")
        condition = condition.strip()
        if name not in ("if", "elsif") or (first and block != "if") or not _PATH.match(condition):
            return None
        path = tuple(condition.split("."))
        # Liquid's own properties and literals: only the engine knows what they mean there.
        return None if _LIQUID_SPECIAL.intersection(path) else path


def _liquid_path(text: str) -> tuple[str | int, ...]:
    """``a.b[0].c`` -> ("a", "b", 0, "c")."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"\.|\[|\]\.?", text.rstrip("]")) if p != "")


_MARKUPSAFE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&#39;", '"': "&#34;"})
"""markupsafe's replacements, character for character."""

_DEFAULT = re.compile(r"^(.+?)\s*\|\s*default:\s*(?:\"([^\"]*)\"|'([^']*)')$")


def _liquid_kind(text: str) -> tuple[str, str, tuple[str | int, ...] | None, str | None]:
    if text.startswith("{{"):
        inner = text[2:-2].strip("-").strip()
        with_default = _DEFAULT.match(inner)
        if with_default and _INDEXED_PATH.match(with_default.group(1)):
            default = with_default.group(2) if with_default.group(2) is not None else with_default.group(3)
            return OUTPUT, "", _liquid_path(with_default.group(1)), default
        return OUTPUT, "", _liquid_path(inner) if _INDEXED_PATH.match(inner) else None, None
    inner = text[2:].lstrip("-").strip()
    name = inner.split(None, 1)[0] if inner else ""
    if name in ("raw", "comment"):
        return OPAQUE, name, None, None
    if name.startswith("end"):
        return CLOSE, name[3:], None, None
    if name in _LIQUID_MIDDLE:
        return MIDDLE, name, None, None
    if name == "capture":
        return STATEFUL, name, None, None  # a capture block defines a variable for later output
    if name in _LIQUID_BLOCKS:
        return OPEN, name, None, None
    if name in _LIQUID_STATEFUL:
        return STATEFUL, name, None, None
    return OPAQUE, name, None, None


class Handlebars(Language):
    """Handlebars through pybars3 (``{{x}}`` escapes, ``{{{x}}}`` does not)."""

    name = "handlebars"
    extension = ".hbs"

    def __init__(self) -> None:
        self._compiler = pybars.Compiler()

    def tags(self, source: str) -> list[Tag]:
        """Every Handlebars mustache in ``source``, in order."""
        found = []
        for match in _HBS_TAG.finditer(source):
            text = match.group(0)
            found.append(Tag(text, match.start(), match.end(), *_hbs_kind(text)))
        return found

    def compile(self, source: str, *, escape: bool, where: str) -> Render:
        """Compile a Handlebars fragment once with pybars3."""
        if not escape:
            # Plain text: the same fragment, unescaped after rendering.
            import html

            inner = self.compile(source, escape=True, where=where)
            return lambda context: html.unescape(inner(context))
        try:
            template = self._compiler.compile(source)
        except Exception as exc:  # pybars raises PybarsError and bare grammar errors
            raise TemplateError(f"{where}: {exc}", source=where, hint="fix the Handlebars syntax") from exc
        return lambda context: str(template(context))

    def dependencies(self, source: str) -> list[tuple[str | int, ...]] | None:
        """Paths read, from the mustaches' words; None if any word is not a known root path."""
        paths: set[tuple[str | int, ...]] = set()
        for tag in self.tags(source):
            if tag.text.startswith("{{!"):
                continue
            words = tag.text.strip("{}").lstrip("#^/&>").split()
            for word in words:
                word = word.removeprefix("../")
                if word in ("if", "unless", "each", "with", "else", "this", "lookup") or word.startswith(
                    ("@", "this.", '"', "'")
                ):
                    continue
                head = word.split(".", 1)[0]
                if head not in ROOTS or not _PATH.match(word):
                    return None
                paths.add(tuple(word.split(".")))
        return sorted(paths, key=repr)

    def escape(self, value: str) -> str:
        """Escape like pybars3's ``{{x}}``."""
        return str(pybars._compiler.escape(value))

    def condition(self, flag: str, then: str, otherwise: str) -> str:
        """``{{#if flag}}then{{else}}otherwise{{/if}}``."""
        return f"{{{{#if {flag}}}}}{then}{{{{else}}}}{otherwise}{{{{/if}}}}"

    def branch_test(self, block: str, head: str, *, first: bool) -> str | None:
        """``{{#if c}}1{{/if}}`` for ``{{#if c}}`` (``{{else}}`` is the fallback branch)."""
        if not first:
            return None
        condition = head[2:-2].strip()[1:].split(None, 1)[1] if " " in head.strip() else ""
        return f"{{{{#{block} {condition}}}}}1{{{{/{block}}}}}"


def _hbs_kind(text: str) -> tuple[str, str, tuple[str | int, ...] | None]:
    if text.startswith("{{!"):
        return OPAQUE, "comment", None
    if text.startswith("{{{"):
        return OUTPUT, "", None
    inner = text[2:-2].strip("~").strip()
    if inner in ("else", "^"):
        return MIDDLE, "else", None
    if inner.startswith(("#", "^")):
        return OPEN, inner[1:].split(None, 1)[0] if len(inner) > 1 else "", None
    if inner.startswith("/"):
        return CLOSE, inner[1:].strip(), None
    if inner.startswith(">"):
        return OPAQUE, "partial", None
    word = inner.removeprefix("this.") if inner.startswith("this.") else inner
    return OUTPUT, "", tuple(word.split(".")) if _PATH.match(inner) and " " not in inner else None


LANGUAGES: dict[str, Language] = {".liquid": Liquid(), ".hbs": Handlebars()}
"""Template languages by file extension."""


def language_for(extension: str) -> Language:
    """The language a file extension selects (``.liquid`` or ``.hbs``)."""
    try:
        return LANGUAGES[extension]
    except KeyError:
        raise TemplateError(
            f"unknown template extension {extension!r}", hint="name templates NAME.liquid or NAME.hbs"
        ) from None
