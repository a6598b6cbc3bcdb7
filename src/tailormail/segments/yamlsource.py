"""YAML that remembers where each value was written, so errors can name the line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from tailormail.errors import ValidationError

Path = tuple[str | int, ...]
"""Where a value sits in a document: keys and list indexes from the root."""


@dataclass
class Located:
    """A parsed document plus the line (1-based) of every value in it."""

    value: Any
    source: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def load_yaml(text: str, source: str) -> Located:
    """Parse one YAML document keeping line numbers (yaml.compose node marks)."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ValidationError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            source=source,
            line=mark.line + 1 if mark else None,
            hint="check the indentation and quoting on that line",
        ) from None
    located = Located(None, source)
    if node is not None:
        located.value = _convert(node, (), located.lines, yaml.constructor.SafeConstructor())
    return located


def from_json(value: Any, source: str) -> Located:
    """Wrap an already-parsed JSON document (no line numbers)."""
    return Located(value, source)


def _convert(node: yaml.Node, path: Path, lines: dict[Path, int], constructor: Any) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            out[key] = _convert(value_node, (*path, key), lines, constructor)
            lines[(*path, key)] = key_node.start_mark.line + 1  # a key's line, not its value's
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(child, (*path, i), lines, constructor) for i, child in enumerate(node.value)]
    return _scalar(node, constructor)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed: much faster


def _scalar(node: yaml.Node, constructor: yaml.constructor.SafeConstructor) -> Any:
    """A scalar with YAML's usual typing (ints, floats, bools, null, dates as text)."""
    value = constructor.construct_object(node, deep=True)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
