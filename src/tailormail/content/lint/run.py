"""Linting one template: compile it, analyse its variables, render samples, check the output.

Two renders per sample: one of the template and its blocks with every
placeholder marked (to place empty values and broken text at a file and line),
and one through the real compile-once pipeline (the HTML a person would get,
for the unsubscribe link and the size).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from liquid.exceptions import LiquidError

from tailormail.content import blocks as blocks_mod
from tailormail.content.compile import CompiledTemplate, compile_template
from tailormail.content.context import build_context
from tailormail.content.engines import Language, TemplateError
from tailormail.content.lint import checks
from tailormail.content.lint.findings import Finding, Report
from tailormail.content.lint.render import Marks, Rendered
from tailormail.content.lint.samples import SAMPLE_LINKS, Sample
from tailormail.content.lint.schema import Schema
from tailormail.content.lint.units import Unit, language_of, relative, subject_line, template_unit, units_of
from tailormail.content.lint.variables import HandlebarsSyntaxError, Reference, handlebars_references, liquid_references
from tailormail.content.preview import parts_of
from tailormail.content.render import Envelope, RenderFailure, _check_required, render_one
from tailormail.content.templates import Block, Variant

ENVELOPE = Envelope("lint@example.invalid", "example.invalid", datetime(2026, 1, 1, tzinfo=UTC), {"name": "lint"})
"""The sender and campaign sample renders use (nothing is sent)."""


@dataclass
class Linter:
    """Everything lint needs besides the template: workspace, schema and samples."""

    root: Path
    schema: Schema
    samples: list[Sample]

    def lint(self, path: Path) -> Report:
        """Run every check on one template file."""
        report = Report(relative(path, self.root))
        language: Language = language_of(path)  # type: ignore[assignment]
        try:
            units = units_of(template_unit(path, self.root), self.root, language)
            references = [ref for unit in units for ref in _references(unit, language)]
            compiled: CompiledTemplate | None = compile_template(self.root, path.stem)
        except _Syntax as error:
            report.add([error.finding])
            return report
        except TemplateError as error:
            report.add([_from_template_error(error, report.template, self.root)])
            if "references" not in locals():
                return report
            compiled = None
        report.add([f for ref in references if (f := self.schema.check(ref)) is not None])
        for unit in units:
            report.add(checks.insecure_links(unit.text, unit.file) + checks.missing_alt(unit.text, unit.file))
            report.add(checks.unsupported_features(unit.text, unit.file) + checks.invalid_mjml(unit.text, unit.file))
        if compiled is not None:
            # An unknown variable also renders empty: say it once, as the unknown variable.
            known_bad = {(f.file, f.line) for f in report.errors}
            found = self._render_checks(units, language, compiled)
            report.add([f for f in found if not (f.check == "empty-placeholder" and (f.file, f.line) in known_bad)])
        return report

    def _render_checks(self, units: list[Unit], language: Language, compiled: CompiledTemplate) -> list[Finding]:
        marks = Marks()
        marked = [replace(u, text=marks.instrument(u.text, u.file, language.name)) for u in units]
        render = language.compile(_expand(marked, language), escape=True, where=units[0].file)
        found: list[Finding] = []
        for sample, variant in self._runs(compiled):
            context = build_context(
                sample.recipient, campaign=ENVELOPE.campaign, known_segments=sorted(self.schema.segments),
                variant=variant,
            )  # fmt: skip
            try:
                _check_required(compiled, context)
            except RenderFailure:
                continue  # this person would not get the mail at all: nothing to check
            label = sample.name + _variant_label(variant)
            try:
                rendered = marks.collect(render(context))
            except Exception as error:  # any engine error at render time (pybars raises plain ones)
                found.append(Finding("render-error", str(error).splitlines()[0], units[0].file, sample=label))
                continue
            found += self._output_checks(rendered, label, units)
            found += self._final_checks(compiled, sample, variant, label, units[0].file)
        return found

    def _runs(self, compiled: CompiledTemplate) -> list[tuple[Sample, dict[str, Any]]]:
        """Every sample with default blocks, then the first sample once per block variant."""
        runs: list[tuple[Sample, dict[str, Any]]] = [(s, {}) for s in self.samples]
        for block in compiled.blocks.values():
            for variant in block.variants:
                flags = {block.name: variant.name, blocks_mod.variant_flag(block.name, variant.name): True}
                runs.append((self.samples[0], flags))
        return runs

    def _output_checks(self, rendered: Rendered, label: str, units: list[Unit]) -> list[Finding]:
        found = checks.empty_placeholders(rendered, label)
        return found + checks.text_problems(rendered, label, [(u.file, u.text) for u in units])

    def _final_checks(
        self, compiled: CompiledTemplate, sample: Sample, variant: dict[str, Any], label: str, file: str
    ) -> list[Finding]:
        result = render_one(compiled, sample.recipient, replace(ENVELOPE, known_segments=sorted(self.schema.segments)),
                            variant=variant)  # fmt: skip
        if not result.ok or result.message is None:
            return [Finding("render-error", result.error or "no message", file, sample=label)]
        html, _text = parts_of(result.message)
        found = checks.unsubscribe_link(html, SAMPLE_LINKS["unsubscribe"], file) + checks.html_size(html, file)
        # The subject is a template too: "Hi , your picks" is as broken there as in the body.
        line = subject_line(self.root / file)
        for problem in checks.text_problems(Rendered(result.subject), label, [(file, "")]):
            found.append(replace(problem, message=f"subject: {problem.message}", line=line))
        return found


def _variant_label(variant: dict[str, Any]) -> str:
    shown = [f"{k}={v}" for k, v in variant.items() if isinstance(v, str)]
    return f" with {', '.join(shown)}" if shown else ""


def _expand(units: list[Unit], language: Language) -> str:
    """The template with its (marked) blocks placed, as the compiler places them."""
    blocks: dict[str, Block] = {}
    for unit in units[1:]:
        name = str(unit.block)
        block = blocks.get(name) or Block(name, language, "")
        if unit.variant is None:
            block = replace(block, default=unit.text)
        else:
            block = replace(block, variants=(*block.variants, Variant(unit.variant, {}, unit.text)))
        blocks[name] = block
    return blocks_mod.expand(units[0].text, language, lambda name: blocks[name], units[0].file, {})


class _Syntax(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def _references(unit: Unit, language: Language) -> list[Reference]:
    try:
        if language.name == "handlebars":
            return handlebars_references(unit.text, unit.file)[0]
        return liquid_references(unit.text, unit.file)
    except HandlebarsSyntaxError as error:
        raise _Syntax(Finding("syntax", str(error), unit.file, error.line, hint="fix the Handlebars syntax")) from None
    except LiquidError as error:
        token = getattr(error, "token", None)
        index = getattr(token, "start_index", -1) if token is not None else -1
        line = unit.text.count("\n", 0, index) + 1 if index >= 0 else None
        message = str(getattr(error, "message", None) or error).splitlines()[0]
        raise _Syntax(Finding("syntax", message, unit.file, line, hint="fix the Liquid syntax")) from None


def _from_template_error(error: TemplateError, template: str, root: Path) -> Finding:
    """A compile error as a finding at its file and line."""
    file = relative(Path(error.source), root) if error.source and "/" in error.source else template
    check = "invalid-mjml" if "MJML" in error.message or "laid out" in error.message else "syntax"
    message = error.message.replace(f"{error.source}: ", "") if error.source else error.message
    return Finding(check, message, file, error.line, hint=error.hint)
