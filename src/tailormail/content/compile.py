"""Compile once: a template version becomes a skeleton ready for per-recipient rendering.

Order matters.  Blocks are placed and their variants turned into conditions;
the template's tags are protected; MJML and the CSS inliner run ONCE on the
protected source; every link becomes a numbered slot; the plain-text part is
derived from that HTML; then the tags come back and the HTML, text and subject
are split into parts (see ``parts.py``).  The result is cached by the content
hash of the template, its blocks and its layout, so editing a block changes
the hash of every template using it and they all recompile on next use.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from tailormail.content import blocks as blocks_mod
from tailormail.content.layout import mjml_to_html, protect, restore
from tailormail.content.parts import SLOT_CLOSE, SLOT_MID, SLOT_OPEN, Fragment, split
from tailormail.content.rules import check_block_rules
from tailormail.content.templates import Block, TemplateSource, load_block, load_layout, load_template
from tailormail.content.text import html_to_text

COMPILER_VERSION = "1"
"""Bump when compiled output changes, so cached and stored versions are told apart."""

_HREF = re.compile(r"(<a\b[^>]*?\shref=\")([^\"]*)(\")", re.IGNORECASE)
_UNTRACKED = ("mailto:", "tel:", "#", "sms:")
_CACHE: dict[str, CompiledTemplate] = {}


@dataclass(frozen=True)
class LinkSlot:
    """A link of the compiled email: where it is and what it pointed to in the template."""

    id: int
    block: str | None
    position: int
    url: str
    """The href as written, tags included (``{{ product.url }}``)."""
    kind: str = "tracked"
    """``tracked`` (wrapped by the link signer) or ``system`` (``links.*``: already signed)."""


@dataclass
class CompiledTemplate:
    """A template version compiled once: skeleton parts, link slots and settings."""

    name: str
    language: str
    digest: str
    html: Fragment
    text: Fragment
    subject: Fragment
    from_name: str
    required: tuple[str, ...]
    slots: list[LinkSlot]
    blocks: dict[str, Block] = field(default_factory=dict)
    layout: str = "default"
    html_bytes: int = 0


def compile_template(workspace: Path, name: str) -> CompiledTemplate:
    """Compile ``templates/NAME`` (cached by the content hash of it, its blocks and layout)."""
    source = load_template(workspace, name)
    used: dict[str, Block] = {}
    where = str(source.path)

    def load(block_name: str) -> Block:
        return load_block(workspace, block_name, source.language)

    body = blocks_mod.expand(source.body, source.language, load, where, used)
    layout, layout_digest = load_layout(workspace, source.layout)
    digest = _digest(source, used, layout_digest)
    cached = _CACHE.get(digest)
    if cached is not None:
        return cached
    check_block_rules(workspace, used.values())
    compiled = _compile(source, body, layout, used, digest)
    _CACHE[digest] = compiled
    return compiled


def _digest(source: TemplateSource, used: dict[str, Block], layout_digest: str) -> str:
    parts = [COMPILER_VERSION, source.digest, layout_digest, *(f"{n}:{b.digest}" for n, b in sorted(used.items()))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _compile(source: TemplateSource, body: str, layout: str, used: dict[str, Block], digest: str) -> CompiledTemplate:
    language, where = source.language, str(source.path)
    for text, label in (
        (body, where),
        (source.subject, f"{where}: subject"),
        (source.preheader, f"{where}: preheader"),
    ):
        language.compile(text, escape=True, where=label)  # syntax errors with the author's own line numbers
    protect(body, language, where, source.body_line)  # misplaced tags, reported at the author's line
    if "<mj-" not in body:
        body = f"<mj-section><mj-column><mj-text>\n{body}\n</mj-text></mj-column></mj-section>"
    document = layout.replace("[[content]]", body).replace("[[preheader]]", source.preheader)
    document = document.replace("[[subject]]", source.subject)
    protected, tags = protect(document, language, where)
    laid_out = mjml_to_html(protected, where)
    with_slots, slots = _mark_slots(laid_out, tags)
    text = html_to_text(with_slots)
    html_skeleton = restore(blocks_mod.BLOCK_MARKER.sub("", with_slots), tags)
    return CompiledTemplate(
        name=source.name,
        language=language.name,
        digest=digest,
        html=split(html_skeleton, language, escape=True, where=where),
        text=split(restore(text, tags), language, escape=False, where=f"{where} (text part)"),
        subject=split(source.subject.strip(), language, escape=False, where=f"{where}: subject"),
        from_name=source.from_name,
        required=source.required,
        slots=slots,
        blocks=used,
        layout=source.layout,
        html_bytes=len(html_skeleton.encode()),
    )


def _mark_slots(laid_out: str, tags: list) -> tuple[str, list[LinkSlot]]:
    """Wrap every link's href in slot markers; note its block and position."""
    blocks_at = [(m.start(), m.group(1), bool(m.group(2))) for m in blocks_mod.BLOCK_MARKER.finditer(laid_out)]
    slots: list[LinkSlot] = []

    def block_at(position: int) -> str | None:
        stack: list[str] = []
        for start, name, is_end in blocks_at:
            if start > position:
                break
            if is_end:
                stack.pop() if stack else None
            else:
                stack.append(name)
        return stack[-1] if stack else None

    def mark(match: re.Match[str]) -> str:
        value = match.group(2)
        original = html.unescape(restore(value, tags))
        if not value or value.startswith(_UNTRACKED):
            return match.group(0)
        kind = "system" if "links." in original else "tracked"
        slot = LinkSlot(len(slots), block_at(match.start()), len(slots) + 1, original, kind)
        slots.append(slot)
        return f"{match.group(1)}{SLOT_OPEN}{slot.id}{SLOT_MID}{value}{SLOT_CLOSE}{match.group(3)}"

    return _HREF.sub(mark, laid_out), slots


def clear_cache() -> None:
    """Forget compiled templates (tests; a long-running process never needs to)."""
    _CACHE.clear()
