"""The checks on source text and on rendered output; each returns findings."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from mjml import mjml2html

from tailormail.content import caniemail
from tailormail.content.lint.findings import Finding
from tailormail.content.lint.render import Rendered

GMAIL_CLIP_BYTES = 102 * 1024
"""Gmail clips a message whose HTML is larger than this and hides the rest."""

_LEFTOVER = re.compile(r"\{\{|\{%|%\}|\}\}")
_INLINE = "\x00"
"""Stands in for inline tags in visible text: not a space, so "<b>VIP20</b>." stays whole."""
_BROKEN = re.compile(r"(?<=\w)[ \t\x00]*[ \t][ \t\x00]*[,.;:!?](?=\s|$|\x00)|\([\s\x00]*\)")
_NO_AMOUNT = re.compile(r"(?<!\d)(?<!\d )(?<!\d\xa0)[$€£¥](?![\s\x00]*[\d.,]*\d)")
_INLINE_TAGS = re.compile(r"</?(a|b|strong|em|i|u|span|small|sup|sub|font|code|mark|s)\b[^>]*>", re.I)
_INSECURE = re.compile(r"""\b(?:href|src|background)\s*=\s*["']?\s*(http://[^"'\s>]*)""", re.I)
_TAGS = re.compile(r"<[^>]*>")
_CONDITIONAL = re.compile(r"<!--.*?-->", re.S)


def text_of(html: str) -> str:
    """Visible text: comments and tags replaced by spaces, offsets kept."""
    blank = _CONDITIONAL.sub(lambda m: " " * len(m.group(0)), html)
    blank = re.sub(r"<(style|script)\b.*?</\1>", lambda m: " " * len(m.group(0)), blank, flags=re.S | re.I)
    blank = _INLINE_TAGS.sub(lambda m: _INLINE * len(m.group(0)), blank)
    return _TAGS.sub(lambda m: " " * len(m.group(0)), blank)


def empty_placeholders(rendered: Rendered, sample: str) -> list[Finding]:
    """Output statements that rendered to nothing (unless they say ``default``)."""
    return [
        Finding(
            "empty-placeholder",
            f"{p.expression.strip()} renders empty",
            p.file,
            p.line,
            hint="give it a fallback, e.g. {{ customer.firstName | default: 'there' }}, or guard it with {% if %}",
            sample=sample,
        )
        for p in rendered.placeholders
        if not p.value.strip() and "default" not in p.expression and not p.expression.startswith("{{{")
    ]


def text_problems(rendered: Rendered, sample: str, sources: list[tuple[str, str]]) -> list[Finding]:
    """Leftover tags, text broken by an empty value and currency with no amount."""
    visible = text_of(rendered.text)
    found: list[Finding] = []
    for check, pattern, what in (
        ("leftover-tag", _LEFTOVER, "a leftover template tag"),
        ("broken-text", _BROKEN, "text broken by an empty value"),
        ("missing-amount", _NO_AMOUNT, "a currency sign with no amount"),
    ):
        for match in pattern.finditer(visible):
            where = _literal_place(sources, visible, match.start()) or rendered.line_near(match.start())
            file, line = where or (sources[0][0], None)
            snippet = " ".join(visible[max(0, match.start() - 20) : match.end() + 10].replace(_INLINE, "").split())
            found.append(Finding(check, f"{what}: “{snippet}”", file, line, sample=sample))
    return found


def _literal_place(sources: list[tuple[str, str]], visible: str, start: int) -> tuple[str, int] | None:
    """Where the text at ``start`` is written literally in a source, if it is."""
    following = visible[start : start + 20].replace(_INLINE, "").split("\n")[0].rstrip()
    for size in range(len(following), 3, -1):
        needle = following[:size]
        for file, source in sources:
            at = source.find(needle)
            if at >= 0:
                return file, source.count("\n", 0, at) + 1
    return None


def insecure_links(source: str, file: str) -> list[Finding]:
    """http:// links and images written in the source."""
    return [
        Finding(
            "insecure-link",
            f"{m.group(1)[:60]} is not https",
            file,
            source.count("\n", 0, m.start()) + 1,
            hint="use https:// (mail clients warn about or block plain http)",
        )
        for m in _INSECURE.finditer(source)
    ]


def unsubscribe_link(html: str, unsubscribe_url: str, file: str) -> list[Finding]:
    """An error when no link goes to the unsubscribe URL (or says unsubscribe)."""
    for anchor in re.finditer(r"<a\b([^>]*)>(.*?)</a>", html, re.S | re.I):
        href = re.search(r"""href\s*=\s*["']([^"']*)""", anchor.group(1), re.I)
        target = href.group(1) if href else ""
        if target and (unsubscribe_url in target or "unsubscribe" in (target + anchor.group(2)).lower()):
            return []
    return [
        Finding(
            "missing-unsubscribe",
            "no unsubscribe link: the law (CAN-SPAM, GDPR) and Gmail's sender rules require one",
            file,
            None,
            hint='add <a href="{{ links.unsubscribe }}">Unsubscribe</a>, usually in the footer block',
        )
    ]


def html_size(html: str, file: str) -> list[Finding]:
    """A warning when the rendered HTML is over Gmail's clipping size."""
    size = len(html.encode("utf-8"))
    if size <= GMAIL_CLIP_BYTES:
        return []
    return [
        Finding(
            "html-too-large",
            f"the rendered HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB",
            file,
            None,
            hint="trim markup or move content behind a link",
        )
    ]


def unsupported_features(source: str, file: str) -> list[Finding]:
    """HTML and CSS that a major client does not support, per caniemail."""
    return [
        Finding(
            "unsupported-feature",
            f"{use.feature.title} ({use.text}) is not supported by {', '.join(use.feature.unsupported)}",
            file,
            use.line,
            hint=f"see {use.feature.url}",
        )
        for use in caniemail.uses_in(source)
    ]


class _TagScanner(HTMLParser):
    """Collects (tag, attributes, line) of every start tag, and MJML nesting."""

    def __init__(self, stack: list[str] | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None], int, str | None]] = []
        self.stack: list[str] = list(stack or [])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = next((t for t in reversed(self.stack) if t.startswith("mj")), None)
        self.tags.append((tag, dict(attrs), self.getpos()[0], parent))
        if tag.startswith("mj") and tag not in MJML_VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = next((t for t in reversed(self.stack) if t.startswith("mj")), None)
        self.tags.append((tag, dict(attrs), self.getpos()[0], parent))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass


def scan_tags(source: str, stack: list[str] | None = None) -> _TagScanner:
    """Parse ``source`` leniently (templates are not well-formed XML), inside ``stack``."""
    scanner = _TagScanner(stack)
    scanner.feed(source)
    scanner.close()
    return scanner


def missing_alt(source: str, file: str) -> list[Finding]:
    """Images (``<img>``, ``<mj-image>``) without an alt attribute."""
    return [
        Finding(
            "missing-alt",
            f"<{tag}> without alt text ({(attrs.get('src') or '')[:50]})",
            file,
            line,
            hint='describe the image in alt="..." (or alt="" if it is decoration)',
        )
        for tag, attrs, line, _ in scan_tags(source).tags
        if tag in ("img", "mj-image") and "alt" not in attrs
    ]


MJML_PARENTS: dict[str, set[str]] = {
    "mj-head": {"mjml"},
    "mj-body": {"mjml"},
    "mj-wrapper": {"mj-body"},
    "mj-section": {"mj-body", "mj-wrapper"},
    "mj-group": {"mj-section"},
    "mj-column": {"mj-section", "mj-group"},
    "mj-hero": {"mj-body", "mj-wrapper"},
}
"""Where MJML's structural components may appear (the MJML documentation's nesting rules)."""

MJML_CONTENT = {
    "mj-text",
    "mj-image",
    "mj-button",
    "mj-divider",
    "mj-spacer",
    "mj-table",
    "mj-social",
    "mj-navbar",
    "mj-carousel",
    "mj-accordion",
    "mj-raw",
}
MJML_HEAD = {
    "mj-attributes",
    "mj-breakpoint",
    "mj-font",
    "mj-html-attributes",
    "mj-preview",
    "mj-style",
    "mj-title",
    "mj-all",
    "mj-class",
}
MJML_INNER = {
    "mj-social-element",
    "mj-navbar-link",
    "mj-carousel-image",
    "mj-accordion-element",
    "mj-accordion-title",
    "mj-accordion-text",
    "mj-selector",
    "mj-html-attribute",
    "mj-include",
}
MJML_VOID = {
    "mj-image",
    "mj-divider",
    "mj-spacer",
    "mj-breakpoint",
    "mj-font",
    "mj-carousel-image",
    "mj-all",
    "mj-class",
    "mj-include",
}
MJML_TAGS = {"mjml", *MJML_PARENTS, *MJML_CONTENT, *MJML_HEAD, *MJML_INNER}


def invalid_mjml(source: str, file: str) -> list[Finding]:
    """Unknown MJML tags and components in the wrong place (a body or block sits in <mj-body>)."""
    if "<mj" not in source:
        return []
    whole = "<mjml" in source
    found: list[Finding] = []
    for tag, _attrs, line, parent in scan_tags(source, None if whole else ["mjml", "mj-body"]).tags:
        if not tag.startswith("mj"):
            continue
        if tag not in MJML_TAGS:
            found.append(
                Finding(
                    "invalid-mjml",
                    f"<{tag}> is not an MJML component",
                    file,
                    line,
                    hint="see https://documentation.mjml.io/ for the components",
                )
            )
        elif tag in MJML_PARENTS and parent not in MJML_PARENTS[tag]:
            allowed = " or ".join(f"<{p}>" for p in sorted(MJML_PARENTS[tag]))
            found.append(Finding("invalid-mjml", f"<{tag}> must be inside {allowed}, not <{parent}>", file, line))
        elif tag in MJML_CONTENT and parent not in ("mj-column", "mj-hero", "mj-attributes"):
            found.append(
                Finding(
                    "invalid-mjml",
                    f"<{tag}> must be inside <mj-column> or <mj-hero>",
                    file,
                    line,
                    hint="wrap it: <mj-section><mj-column>...</mj-column></mj-section>",
                )
            )
    if not found and whole:
        try:
            mjml2html(source)
        except ValueError as error:
            found.append(
                Finding(
                    "invalid-mjml", f"MJML does not compile: {error}", file, None, hint="check that every tag is closed"
                )
            )
    return found
