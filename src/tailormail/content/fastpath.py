"""A compiled skeleton's per-recipient walk as one generated Python function.

``Fragment.pieces`` walks its parts and dispatches on each one's class; per
recipient that costs about as much as the work itself (~130 parts a mail).
Here the walk is written out once per template version as straight-line code:
static text is appended as the same string objects, conditionals become
nested ``if``/``else``, plain outputs look their path up inline and fall back
to ``Output.render`` for anything but a non-empty string, links with a static
URL or a single output are signed inline.  Every other part calls its own
``pieces``, so the output is the same as the walk's (tests render both ways).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from tailormail.content.parts import Conditional, Fragment, Island, Link, Output, Signer

Pieces = Callable[[dict[str, Any], Signer, list[str]], None]
"""(context, signer, out): append the recipient's pieces (the signer is never None here)."""

_MISSING = object()


class _Writer:
    def __init__(self) -> None:
        self.lines = ["def pieces(context, sign, out):", "    append = out.append"]
        self.names: dict[str, Any] = {"_M": _MISSING, "_escape": html.escape, "_unescape": html.unescape}

    def name(self, value: Any, prefix: str) -> str:
        key = f"{prefix}{len(self.names)}"
        self.names[key] = value
        return key

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def fragment(self, fragment: Fragment, depth: int) -> None:
        if not fragment.parts:
            self.emit(depth, "pass")
        for part in fragment.parts:
            kind = part.__class__
            if kind is str:
                self.emit(depth, f"append({self.name(part, 's')})")
            elif kind is Output and self.lookup(part, depth):
                self.emit(depth, "append(v)")
            elif kind is Link and self.link(part, depth):
                pass
            elif kind is Conditional:
                self.conditional(part, depth)
            else:
                self.emit(depth, f"{self.name(part, 'p')}.pieces(context, sign, out)")

    def lookup(self, part: Output, depth: int) -> bool:
        """Set ``v`` to the output's text: its path looked up inline, ``render`` unless a non-empty string.

        False (nothing written) for a path this cannot look up (a negative index).
        """
        path = part.path
        if not path or path[0].__class__ is not str or any(k.__class__ is int and k < 0 for k in path):  # type: ignore[operator]
            return False
        self.emit(depth, f"v = context.get({path[0]!r}, _M)")
        for key in path[1:]:
            if key.__class__ is str:
                self.emit(depth, f"v = v.get({key!r}, _M) if v.__class__ is dict else _M")
            else:  # Output.render indexes lists and looks ints up in mappings; anything else it decides
                self.emit(depth, f"v = v[{key}] if v.__class__ is list and len(v) > {key} else _M")
        value = f"{self.name(part.escape, 'e')}(v)" if part.escape else "v"
        self.emit(depth, f"v = {value} if v.__class__ is str and v else {self.name(part, 'o')}.render(context)")
        return True

    def link(self, part: Link, depth: int) -> bool:
        """``Link.pieces`` written out, for a static URL or a single output (False: anything else)."""
        url = part.static_url
        single = part.url.parts[0] if len(part.url.parts) == 1 else None
        if url is not None:
            unescaped = html.unescape(url) if part.escape and "&" in url else url
            self.emit(depth, f"v = {self.name(unescaped, 'u')}")
        elif single.__class__ is Output and self.lookup(single, depth):  # type: ignore[arg-type]
            if part.escape:
                self.emit(depth, 'v = _unescape(v) if "&" in v else v')
        else:
            return False
        self.emit(depth, f"v = sign({part.slot}, v)")
        if part.escape:
            self.emit(depth, """append(_escape(v) if "&" in v or '"' in v or "<" in v else v)""")
        else:
            self.emit(depth, "append(v)")
        return True

    def conditional(self, part: Conditional, depth: int) -> None:
        """Nested if/else (a test may need statements before it, which ``elif`` cannot have)."""
        for test, body in part.branches:
            if test is None:
                self.fragment(body, depth)
                return
            self.emit(depth, f"if {self.test(test, depth)}:")
            self.fragment(body, depth + 1)
            self.emit(depth, "else:")
            depth += 1
        self.emit(depth, "pass")

    def test(self, test: Island, depth: int) -> str:
        """A branch's test as an expression; ``{% if a.b %}`` decided inline for plain values (``parts._truth``)."""
        name = self.name(test, "t")
        path = test.truth_path
        if not path:
            return f"{name}.render(context)"
        self.emit(depth, f"w = context.get({path[0]!r})")
        for key in path[1:]:
            self.emit(depth, f"w = w.get({key!r}) if w.__class__ is dict else _M")
        # nil and false are false; strings, ints and true are true; anything else: the island decides
        return (
            f"(False if w is None or w is False else True if w.__class__ is str or w.__class__ is int or w is True"
            f" else {name}.render(context))"
        )


def compile_pieces(fragment: Fragment) -> Pieces:
    """``fragment.pieces`` for a recipient with a signer, as one function."""
    writer = _Writer()
    writer.fragment(fragment, 1)
    namespace = dict(writer.names)
    exec(compile("\n".join(writer.lines), f"<pieces of {fragment.source[:40]!r}>", "exec"), namespace)
    return namespace["pieces"]  # type: ignore[no-any-return]
