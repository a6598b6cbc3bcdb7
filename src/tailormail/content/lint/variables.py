"""Static analysis: every variable a template reads, with its file and line.

Liquid uses python-liquid 2's own analysis (``BoundTemplate.analyze``), which
leaves out names the template assigns or loops over; each block is analysed
as its own unit (see ``units``).  Handlebars has no analysis API, so we walk
the parse tree pybars3 builds (the same grammar it compiles), counting line
breaks in the text between expressions to place each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liquid import Environment
from pybars import Compiler


@dataclass(frozen=True)
class Reference:
    """A variable path read by a template (``customer.firstName``) and where."""

    path: tuple[str | int, ...]
    file: str
    line: int
    scope: str | None = None
    """For a name inside ``{{#each X}}``/``{{#with X}}``: the path X it is relative to."""

    @property
    def text(self) -> str:
        """The path as a person writes it."""
        out = str(self.path[0]) if self.path else "this"
        for part in self.path[1:]:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out


def liquid_references(source: str, file: str) -> list[Reference]:
    """Global variables a Liquid source reads (raises LiquidError when it does not parse)."""
    template = _ANALYSER.from_string(source)
    found: list[Reference] = []
    for variables in template.analyze(include_partials=False).globals.values():
        for variable in variables:
            path = tuple(p if isinstance(p, int | str) else "[]" for p in variable.segments)
            found.append(Reference(path, file, variable.span.line_col(source)[0]))
    return found


_ANALYSER = Environment()


class HandlebarsSyntaxError(Exception):
    """A Handlebars template pybars3 cannot parse, with the line it stopped at."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def handlebars_tree(source: str) -> list[Any]:
    """pybars3's parse tree of ``source`` (raises HandlebarsSyntaxError)."""
    tree, (position, _) = Compiler._handlebars(source).apply("template")
    if position < len(source):
        line = source.count("\n", 0, position) + 1
        raise HandlebarsSyntaxError(f"cannot parse near {source[position : position + 20]!r}", line)
    return list(tree)


def handlebars_references(source: str, file: str) -> tuple[list[Reference], list[str]]:
    """Variables a Handlebars template reads and the partials it uses."""
    walker = _HandlebarsWalker(file)
    walker.walk(handlebars_tree(source)[1:], scope=None)
    return walker.references, walker.partials


_HELPERS_WITH_CONTEXT = {"each", "with"}
_BUILTIN_HELPERS = {"if", "unless", "each", "with", "lookup", "log", "else"}


class _HandlebarsWalker:
    """Walks pybars3's tuples in order, counting newlines to know the line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.line = 1
        self.references: list[Reference] = []
        self.partials: list[str] = []

    def walk(self, nodes: list[Any], scope: str | None) -> None:
        for node in nodes:
            kind = node[0]
            if kind in ("literal", "newline", "whitespace"):
                self.line += str(node[1]).count("\n")
            elif kind in ("expand", "escapedexpand"):
                self._expression(node[1], node[2], scope)
            elif kind == "partial":
                self._partial(node[1])
            elif kind in ("block", "invertedblock"):
                self._block(node, scope)

    def _expression(self, path: Any, arguments: list[Any], scope: str | None) -> None:
        names = _path(path)
        if arguments and names and names[0] not in _BUILTIN_HELPERS:
            # A helper call: its name is not a variable, its arguments are.
            names = []
        if names and names[0] not in _BUILTIN_HELPERS:
            self._add(names, scope)
        for argument in arguments:
            self._argument(argument, scope)

    def _argument(self, argument: Any, scope: str | None) -> None:
        if argument[0] == "path":
            self._add(_path(argument), scope)
        elif argument[0] == "kwparam":
            self._argument(argument[2], scope)
        elif argument[0] == "subexpr":
            for inner in argument[2]:
                self._argument(inner, scope)

    def _block(self, node: Any, scope: str | None) -> None:
        helper, arguments, body, alternative = node[1], node[2], node[3], node[4]
        for argument in arguments:
            self._argument(argument, scope)
        inner = scope
        if helper in _HELPERS_WITH_CONTEXT and arguments and arguments[0][0] == "path":
            inner = ".".join(str(p) for p in _path(arguments[0])) or scope
        self.walk(list(body[1:]) if body and body[0] == "template" else list(body), inner)
        self.walk(list(alternative[1:]) if alternative and alternative[0] == "template" else list(alternative), scope)

    def _partial(self, name: Any) -> None:
        if name and name[0] == "literalparam":
            self.partials.append(str(name[1]).strip("\"'"))

    def _add(self, names: list[str], scope: str | None) -> None:
        if names and names[0].startswith("@") and names[0] != "@root":
            return  # @index, @first, @key: loop data, always defined
        if names and names[0] == "@root":
            names, scope = names[1:], None
        while names and names[0] == "@_parent":
            names, scope = names[1:], None  # ../ leaves the block: treat as the root
        if names and names[0] == "this":
            names = names[1:]
        self.references.append(Reference(tuple(names), self.file, self.line, scope))


def _path(node: Any) -> list[str]:
    if not node or node[0] != "path":
        return []
    return [str(s) for s in node[1] if s != ""]
