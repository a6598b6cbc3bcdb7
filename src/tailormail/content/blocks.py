"""Blocks: reusable partials placed into a template, with their variants.

``{% render 'hero' %}`` (Liquid) or ``{{> hero}}`` (Handlebars) puts block
``hero`` in place when the template is compiled.  A block's variants become
one condition on ``variant.<block>__<name>`` flags, chosen per recipient from
the variants' segment rules (first match wins), so one compiled skeleton holds
every variant and a person sees exactly one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tailormail.content.engines import Language, TemplateError
from tailormail.content.templates import Block

BLOCK_BEGIN = "<!--tm-block:{}-->"
BLOCK_END = "<!--tm-block-end-->"
BLOCK_MARKER = re.compile(r"<!--tm-block(?::([A-Za-z0-9_-]+))?(-end)?-->")
_INCLUDE = {
    "liquid": re.compile(r"\{%-?\s*(?:render|include)\s+['\"]([A-Za-z0-9_-]+)['\"]\s*(,[^%]*)?-?%\}"),
    "handlebars": re.compile(r"\{\{>\s*([A-Za-z0-9_-]+)\s*([^}]*)\}\}"),
}
MAX_DEPTH = 5
"""Blocks may use blocks; this bounds the nesting (and catches a block that includes itself)."""


def variant_flag(block: str, variant: str) -> str:
    """The context key that is true when ``block`` shows ``variant``."""
    return f"{block}__{variant}"


def expand(
    source: str,
    language: Language,
    load: Callable[[str], Block],
    where: str,
    used: dict[str, Block],
    depth: int = 0,
) -> str:
    """Replace every block reference in ``source`` by the block's content and variants."""
    pattern = _INCLUDE[language.name]

    def place(match: re.Match[str]) -> str:
        name, extra = match.group(1), (match.group(2) or "").strip()
        if extra:
            raise TemplateError(
                f"{where}: block {name!r} is given arguments ({extra})",
                source=where,
                hint="blocks see the template's own data; remove the arguments",
            )
        if depth >= MAX_DEPTH:
            raise TemplateError(f"{where}: blocks nested more than {MAX_DEPTH} deep at {name!r}", source=where)
        block = used.get(name) or load(name)
        used[name] = block
        content = _with_variants(block, language)
        inner = expand(content, language, load, f"blocks/{name}", used, depth + 1)
        return f"{BLOCK_BEGIN.format(name)}{inner}{BLOCK_END}"

    return pattern.sub(place, source)


def _with_variants(block: Block, language: Language) -> str:
    """The block's content: one condition per variant, the body as the fallback."""
    content = block.default
    for variant in reversed(block.variants):
        flag = f"variant.{variant_flag(block.name, variant.name)}"
        content = language.condition(flag, variant.content, content)
    return content
