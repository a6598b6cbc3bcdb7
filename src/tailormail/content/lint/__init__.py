"""Template lint: the checks every template passes before it can be sent.

``lint_workspace`` checks the templates of a workspace and returns one Report
per template; ``ensure_sendable`` is what send paths (journeys, campaigns) call
first: it raises ``TemplateHasErrors`` when a template has any error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Connection

from tailormail.content.compile import compile_template
from tailormail.content.engines import LANGUAGES, TemplateError
from tailormail.content.lint.findings import CHECKS, Finding, Report
from tailormail.content.lint.run import Linter
from tailormail.content.lint.samples import builtin_samples, observed_traits, store_samples
from tailormail.content.lint.schema import Schema
from tailormail.content.lint.units import language_of
from tailormail.errors import NotFound, ValidationError

__all__ = [
    "CHECKS",
    "Finding",
    "Report",
    "Schema",
    "TemplateHasErrors",
    "ensure_sendable",
    "find_templates",
    "lint_workspace",
    "linter_for",
    "segment_names",
]


class TemplateHasErrors(ValidationError):
    """A template failed lint, so no journey or campaign may send it."""

    code = "template_has_errors"

    def __init__(self, report: Report) -> None:
        first = report.sorted()[0]
        super().__init__(
            f"template {report.template} has {len(report.errors)} lint error(s); first: {first.message}",
            field="template",
            line=first.line,
            source=first.file,
            hint=f"run `tailormail lint {report.template}` for the full list",
        )
        self.report = report


def find_templates(root: Path, names: Sequence[str] = ()) -> list[Path]:
    """Template files of a workspace: all of templates/, or the named ones."""
    if not names:
        folder = root / "templates"
        return sorted(p for p in folder.rglob("*") if p.is_file() and language_of(p)) if folder.is_dir() else []
    found: list[Path] = []
    for name in names:
        found.append(_resolve(root, name))
    return found


def _resolve(root: Path, name: str) -> Path:
    candidates = [Path(name), root / name, root / "templates" / name]
    candidates += [root / "templates" / f"{name}{ext}" for ext in LANGUAGES]
    for path in candidates:
        if path.is_file():
            return path
    raise NotFound(
        f"template {name!r} not found", hint=f"templates live in {root / 'templates'} as NAME.liquid or NAME.hbs"
    )


def schema_for(root: Path, conn: Connection | None) -> Schema:
    """The known schema: Segment's traits, traits seen in the store, [lint] traits, segments."""
    from tailormail.config import load_settings

    extra = load_settings(root).section("lint").get("traits", [])
    schema = Schema().with_traits(str(t) for t in extra)
    if conn is not None:
        schema = schema.with_traits(observed_traits(conn))
    schema.segments = set(segment_names(root))
    return schema


def segment_names(root: Path) -> list[str]:
    """The segments a workspace defines (``segments/NAME.yaml``), by name."""
    folder = root / "segments"
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def linter_for(root: Path, conn: Connection | None = None, now_ms: int | None = None) -> Linter:
    """A Linter for a workspace; with ``conn`` (and ``now_ms``) its schema and samples use the store."""
    samples = builtin_samples()
    if conn is not None and now_ms is not None:
        samples += store_samples(conn, now_ms)
    return Linter(root.resolve(), schema_for(root, conn), samples)


def lint_workspace(
    root: Path, names: Sequence[str] = (), conn: Connection | None = None, now_ms: int | None = None
) -> list[Report]:
    """Lint the named templates (default: every template) of a workspace."""
    linter = linter_for(root, conn, now_ms)
    return [linter.lint(path) for path in find_templates(root, names)]


_SENDABLE: dict[tuple[str, str, str], Report] = {}


def ensure_sendable(root: Path, name: str, conn: Connection | None = None, now_ms: int | None = None) -> Report:
    """Lint one template; raise TemplateHasErrors when it has errors, else return the report.

    Send paths call this before every batch, so a report is remembered per
    content hash of the template, its blocks and layout: an edit lints again.
    """
    path = _resolve(root, name)
    try:
        key: tuple[str, str, str] | None = (str(root.resolve()), name, compile_template(root, path.stem).digest)
    except TemplateError:
        key = None  # does not compile: lint says where and why
    report = _SENDABLE.get(key) if key else None
    if report is None:
        report = linter_for(root, conn, now_ms).lint(path)
        if key:
            _SENDABLE[key] = report
    if not report.ok:
        raise TemplateHasErrors(report)
    return report
