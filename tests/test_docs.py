"""Docs cannot drift: every CLI command has help text and appears in the README."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from conftest import REPO
from tailormail.cli import app


def command_paths(command: Any, prefix: str = "tailormail") -> Iterator[tuple[str, Any]]:
    children = getattr(command, "commands", None)
    if not children:
        yield prefix, command
        return
    for name, child in sorted(children.items()):
        if not getattr(child, "hidden", False):
            yield from command_paths(child, f"{prefix} {name}")


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paths = list(command_paths(typer.main.get_command(app)))
    assert len(paths) >= 6
    missing_help = [p for p, c in paths if not (c.help or "").strip()]
    undocumented = [p for p, _ in paths if p not in readme]
    assert missing_help == [], f"commands without help: {missing_help}"
    assert undocumented == [], f"commands missing from README.md: {undocumented}"


def test_readme_opens_with_the_two_commands() -> None:
    head = (REPO / "README.md").read_text(encoding="utf-8").split("\n## ")[0]
    assert "make demo" in head and "make test" in head
