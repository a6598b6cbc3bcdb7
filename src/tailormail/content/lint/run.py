"""Linting one template file: parse, analyse variables, render samples, check output."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from liquid import DictLoader, Environment
from liquid.exceptions import LiquidError
from mjml import mjml2html
from pybars import PybarsError

from tailormail.content.lint import checks
from tailormail.content.lint.findings import Finding, Report
from tailormail.content.lint.render import Marks, Rendered, handlebars_renderer, liquid_renderer
from tailormail.content.lint.samples import SAMPLE_LINKS, Sample
from tailormail.content.lint.schema import Schema
from tailormail.content.lint.variables import (
    HandlebarsSyntaxError,
    Reference,
    handlebars_references,
    liquid_references,
)

LANGUAGES = {".liquid": "liquid", ".hbs": "handlebars", ".handlebars": "handlebars"}
"""Template languages by file extension."""

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.S)


@dataclass
class TemplateFile:
    """A template's text split into front matter (subject, data) and body, lines kept."""

    path: Path
    file: str
    language: str
    body: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_mjml(self) -> bool:
        """True when the body is an MJML layout."""
        return "<mjml" in self.body


def language_of(path: Path) -> str | None:
    """``liquid`` or ``handlebars`` from a file name, None for other files."""
    return LANGUAGES.get(path.suffix.lower())


def load_template(path: Path, root: Path) -> tuple[TemplateFile, list[Finding]]:
    """Read a template; front matter becomes blank lines so line numbers stay true."""
    file = _relative(path, root)
    text = path.read_text(encoding="utf-8")
    meta: dict[str, Any] = {}
    problems: list[Finding] = []
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1)) or {}
            meta = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = mark.line + 2 if mark is not None else 1
            problems.append(Finding("syntax", f"front matter is not valid YAML: {error}", file, line))
        text = "\n" * match.group(0).count("\n") + text[match.end() :]
    return TemplateFile(path, file, language_of(path) or "liquid", text, meta), problems


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def blocks_of(root: Path, language: str) -> dict[str, tuple[str, str]]:
    """Block name -> (file, source) for the blocks written in ``language``."""
    folder = root / "blocks"
    if not folder.is_dir():
        return {}
    return {
        p.stem: (_relative(p, root), p.read_text(encoding="utf-8"))
        for p in sorted(folder.iterdir())
        if p.is_file() and language_of(p) == language
    }


@dataclass
class Linter:
    """Everything lint needs besides the template: workspace, schema and samples."""

    root: Path
    schema: Schema
    samples: list[Sample]

    def lint(self, path: Path) -> Report:
        """Run every check on one template file."""
        template, problems = load_template(path, self.root)
        report = Report(template.file, problems)
        blocks = blocks_of(self.root, template.language)
        schema = self.schema.with_data((template.meta.get("data") or {}).keys())
        try:
            references, used = self._analyse(template, blocks)
        except _Syntax as error:
            report.add([error.finding])
            return report
        report.add([f for ref in references if (f := schema.check(ref)) is not None])
        sources = [(template.file, template.body)] + [blocks[name] for name in used if name in blocks]
        for file, source in sources:
            report.add(checks.insecure_links(source, file) + checks.missing_alt(source, file))
            report.add(checks.unsupported_features(source, file))
        if template.is_mjml:
            report.add(checks.invalid_mjml(template.body, template.file))
        # An unknown variable also renders empty: say it once, as the unknown variable.
        known_bad = {(f.file, f.line) for f in report.errors}
        report.add(
            [
                f
                for f in self._render_checks(template, sources)
                if not (f.check == "empty-placeholder" and (f.file, f.line) in known_bad)
            ]
        )
        return report

    def _analyse(self, template: TemplateFile, blocks: dict[str, tuple[str, str]]) -> tuple[list[Reference], list[str]]:
        if template.language == "handlebars":
            return _handlebars_analysis(template, blocks)
        env = Environment(loader=DictLoader({name: src for name, (_, src) in blocks.items()}))
        try:
            parsed = env.from_string(template.body, name=template.file)
            references = liquid_references(parsed, lambda name: _file_of(name, template, blocks))
        except LiquidError as error:
            raise _Syntax(_liquid_finding(error, template, blocks)) from None
        used = sorted({r.file for r in references} - {template.file})
        names = [name for name, (file, _) in blocks.items() if file in used or _mentions(template.body, name)]
        return references, names

    def _render_checks(self, template: TemplateFile, sources: list[tuple[str, str]]) -> list[Finding]:
        marks = Marks()
        marked = [marks.instrument(src, file, template.language) for file, src in sources]
        partials = {Path(file).stem: text for (file, _), text in zip(sources[1:], marked[1:], strict=True)}
        make = handlebars_renderer if template.language == "handlebars" else liquid_renderer
        try:
            render = make(marked[0], partials)
        except (LiquidError, PybarsError) as error:
            return [Finding("syntax", str(error).splitlines()[0], template.file)]
        data = dict(template.meta.get("data") or {})
        found: list[Finding] = []
        for sample in self.samples:
            try:
                rendered = marks.collect(render({**data, **sample.context}))
            except (LiquidError, PybarsError) as error:
                found.append(Finding("render-error", str(error).splitlines()[0], template.file, sample=sample.name))
                continue
            found += self._output_checks(template, rendered, sample, sources)
        return found

    def _output_checks(
        self, template: TemplateFile, rendered: Rendered, sample: Sample, sources: list[tuple[str, str]]
    ) -> list[Finding]:
        found = checks.empty_placeholders(rendered, sample.name)
        found += checks.text_problems(rendered, sample.name, sources)
        html = rendered.text
        if template.is_mjml:
            try:
                html = mjml2html(html)
            except ValueError as error:
                error_finding = Finding(
                    "invalid-mjml", f"MJML does not compile: {error}", template.file, sample=sample.name
                )
                return [*found, error_finding]
        found += checks.unsubscribe_link(html, SAMPLE_LINKS["unsubscribe"], template.file)
        found += checks.html_size(html, template.file)
        return found


class _Syntax(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def _mentions(body: str, block: str) -> bool:
    return (
        re.search(r"""(render|include)\s+['"]""" + re.escape(block) + r"""['"]|\{\{>\s*""" + re.escape(block), body)
        is not None
    )


def _file_of(name: str, template: TemplateFile, blocks: dict[str, tuple[str, str]]) -> tuple[str, str]:
    return blocks.get(name, (template.file, template.body)) if name != template.file else (name, template.body)


def _liquid_finding(error: LiquidError, template: TemplateFile, blocks: dict[str, tuple[str, str]]) -> Finding:
    file, source = _file_of(str(getattr(error, "template_name", "") or template.file), template, blocks)
    token = getattr(error, "token", None)
    index = getattr(token, "start_index", -1) if token is not None else -1
    line = source.count("\n", 0, index) + 1 if index >= 0 else None
    message = str(getattr(error, "message", None) or error).splitlines()[0]
    return Finding("syntax", message, file, line, hint="fix the Liquid syntax")


def _handlebars_analysis(
    template: TemplateFile, blocks: dict[str, tuple[str, str]]
) -> tuple[list[Reference], list[str]]:
    references: list[Reference] = []
    pending, used = [(template.file, template.body)], []
    while pending:
        file, source = pending.pop()
        try:
            refs, partials = handlebars_references(source, file)
        except HandlebarsSyntaxError as error:
            raise _Syntax(Finding("syntax", str(error), file, error.line, hint="fix the Handlebars syntax")) from None
        references += refs
        for name in partials:
            if name in blocks and name not in used:
                used.append(name)
                pending.append(blocks[name])
            elif name not in blocks:
                raise _Syntax(
                    Finding("syntax", f"block {name!r} does not exist", file, None, hint=f"create blocks/{name}.hbs")
                )
    return references, used
