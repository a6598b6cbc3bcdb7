"""A compiled skeleton's per-recipient walk as one generated Python function.

``Fragment.pieces`` walks its parts and dispatches on each one's class; per
recipient that costs about as much as the work itself (~130 parts a mail).
Here the walk is written out once per template version as straight-line code:
static text is appended as the same string objects, conditionals become
``if``/``elif`` chains, plain outputs look their path up inline and fall back
to ``Output.render`` for anything but a non-empty string, links with a static
URL are signed inline.  Every other part calls its own ``pieces``, so the
output is the same as the walk's (tests render both ways).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from tailormail.content.parts import Conditional, Fragment, Link, Output, Signer

Pieces = Callable[[dict[str, Any], Signer, list[str]], None]
"""(context, signer, out): append the recipient's pieces (the signer is never None here)."""

_MISSING = object()


class _Writer:
    def __init__(self) -> None:
        self.lines = ["def pieces(context, sign, out):", "    append = out.append"]
        self.names: dict[str, Any] = {"_M": _MISSING, "_escape": html.escape}

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
            elif kind is Output:
                self.output(part, depth)
            elif kind is Link and part.static_url is not None:
                self.link(part, depth)
            elif kind is Conditional:
                self.conditional(part, depth)
            else:
                self.emit(depth, f"{self.name(part, 'p')}.pieces(context, sign, out)")

    def output(self, part: Output, depth: int) -> None:
        """The path looked up inline; a non-empty string is printed (escaped), anything else by ``render``."""
        if not part.path or any(k.__class__ is not str for k in part.path):
            self.emit(depth, f"append({self.name(part, 'o')}.render(context))")
            return
        self.emit(depth, f"v = context.get({part.path[0]!r}, _M)")
        for key in part.path[1:]:
            self.emit(depth, f"v = v.get({key!r}, _M) if v.__class__ is dict else _M")
        value = f"{self.name(part.escape, 'e')}(v)" if part.escape else "v"
        self.emit(depth, f"append({value} if v.__class__ is str and v else {self.name(part, 'o')}.render(context))")

    def link(self, part: Link, depth: int) -> None:
        """``Link.pieces`` for a static URL, written out."""
        url: str = part.static_url  # type: ignore[assignment]
        if part.escape:
            target = self.name(html.unescape(url) if "&" in url else url, "u")
            self.emit(depth, f"v = sign({part.slot}, {target})")
            self.emit(depth, """append(_escape(v) if "&" in v or '"' in v or "<" in v else v)""")
        else:
            self.emit(depth, f"append(sign({part.slot}, {self.name(url, 'u')}))")

    def conditional(self, part: Conditional, depth: int) -> None:
        for index, (test, body) in enumerate(part.branches):
            if test is None:
                self.emit(depth, "else:")
                self.fragment(body, depth + 1)
                return
            self.emit(depth, f"{'if' if index == 0 else 'elif'} {self.name(test, 't')}.render(context):")
            self.fragment(body, depth + 1)


def compile_pieces(fragment: Fragment) -> Pieces:
    """``fragment.pieces`` for a recipient with a signer, as one function."""
    writer = _Writer()
    writer.fragment(fragment, 1)
    namespace = dict(writer.names)
    exec(compile("\n".join(writer.lines), f"<pieces of {fragment.source[:40]!r}>", "exec"), namespace)
    return namespace["pieces"]  # type: ignore[no-any-return]
