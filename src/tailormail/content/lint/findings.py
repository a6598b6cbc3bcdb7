"""What lint reports: findings (error or warning, file, line) and a report per template."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]

CHECKS: dict[str, tuple[Severity, str]] = {
    "syntax": ("error", "the template does not parse"),
    "unknown-variable": ("error", "a variable that is not in the profile schema or the template's data"),
    "empty-placeholder": ("error", "a placeholder that renders empty for a sample profile"),
    "leftover-tag": ("error", "a leftover {{ or {% in the rendered email"),
    "broken-text": ("error", 'text broken by an empty value, such as "Hi ,"'),
    "missing-amount": ("error", 'a currency sign with no amount, such as "$" alone'),
    "render-error": ("error", "rendering failed for a sample profile"),
    "missing-unsubscribe": ("error", "no unsubscribe link"),
    "invalid-mjml": ("error", "the MJML layout is invalid"),
    "unknown-segment": ("warning", "a segment that no definition in segments/ names (always false)"),
    "missing-alt": ("warning", "an image without alt text"),
    "html-too-large": ("warning", "HTML over 102 KB: Gmail clips the message"),
    "insecure-link": ("warning", "an http:// link or image (not https)"),
    "unsupported-feature": ("warning", "HTML or CSS that Gmail, Outlook, Apple Mail or Yahoo do not support"),
}
"""Every check lint runs: its id, severity and what it catches (README lists these)."""


@dataclass(frozen=True)
class Finding:
    """One problem in one template, at a line of a file when it can be placed."""

    check: str
    message: str
    file: str
    line: int | None = None
    hint: str | None = None
    sample: str | None = None
    """The sample profile whose rendering showed the problem (render checks only)."""

    @property
    def key(self) -> tuple[str, str, int | None, str]:
        """What makes two findings the same problem (the sample that showed it does not)."""
        return (self.check, self.file, self.line, "" if self.sample else self.message)

    @property
    def severity(self) -> Severity:
        """``error`` (blocks sending) or ``warning``."""
        return CHECKS[self.check][0]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "severity": self.severity,
            "check": self.check,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "hint": self.hint,
            "sample": self.sample,
        }


@dataclass
class Report:
    """All findings for one template (its own file and the blocks it uses)."""

    template: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """Findings that stop the template from being sent."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings worth fixing that do not block sending."""
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors

    def add(self, findings: list[Finding]) -> None:
        """Add findings, dropping repeats (the first sample profile that shows one is enough)."""
        seen = {f.key for f in self.findings}
        for finding in findings:
            key = finding.key
            if key not in seen:
                seen.add(key)
                self.findings.append(finding)

    def sorted(self) -> list[Finding]:
        """Errors first, then by file and line."""
        return sorted(self.findings, key=lambda f: (f.severity != "error", f.file, f.line or 0, f.check))

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "template": self.template,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.as_dict() for f in self.sorted()],
        }
