"""Layout: MJML to HTML with CSS inlined, run once per template version.

The template's tags must survive MJML and the CSS inliner untouched, and the
template language must run on the finished HTML (its output goes into the
compiled skeleton, never through MJML again).  So every tag is first replaced
by an opaque word (``tmtag000042z``) that both tools carry through as text;
block tags (``{% if %}``, ``{% for %}``) become HTML comments, because the
inliner's HTML5 parser moves stray text out of tables but leaves comments in
place, and between sections they are wrapped in ``<mj-raw>`` so MJML keeps
them there; afterwards the words become tags again.
"""

from __future__ import annotations

import re

import css_inline
import mjml

from tailormail.content.engines import OUTPUT, Language, Tag, TemplateError, error_at

TOKEN = re.compile(r"(?:<!--)?tmtag(\d{6})z(?:-->)?")
COMMENT_TOKEN = re.compile(r"^tmtag\d{6}z$")
_MJ_TAG = re.compile(r"<(/?)(mj-[a-z-]+)\b[^>]*?(/?)>")
_CONTENT_ELEMENTS = frozenset(
    {
        "mj-text",
        "mj-button",
        "mj-raw",
        "mj-table",
        "mj-preview",
        "mj-title",
        "mj-navbar-link",
        "mj-social-element",
        "mj-accordion-title",
        "mj-accordion-text",
    }
)
_SECTION_PARENTS = frozenset({"mj-body", "mj-wrapper"})
_PLAIN_TEXT = frozenset({"mj-title", "mj-preview"})
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def protect(source: str, language: Language, where: str, first_line: int = 1) -> tuple[str, list[Tag]]:
    """Replace every tag by a token word; return the protected MJML and the tags by index."""
    tags = language.tags(source)
    parents = _parents_at(source, [t.start for t in tags])
    out, last = [], 0
    for index, (tag, parent) in enumerate(zip(tags, parents, strict=True)):
        out.append(source[last : tag.start])
        token = f"tmtag{index:06d}z"
        if tag.kind == OUTPUT or parent in _PLAIN_TEXT or _inside_markup(source, tag.start):
            out.append(token)
        elif parent in _CONTENT_ELEMENTS or parent is None:
            out.append(f"<!--{token}-->")
        elif parent in _SECTION_PARENTS:
            out.append(f"<mj-raw><!--{token}--></mj-raw>")
        else:
            raise error_at(
                source,
                tag.start,
                where,
                f"{tag.text} inside <{parent}> cannot be laid out",
                "put conditions and loops around whole <mj-section>s, or inside <mj-text>",
                first_line,
            )
        last = tag.end
    out.append(source[last:])
    return "".join(out), tags


def _inside_markup(source: str, position: int) -> bool:
    """True inside a tag's angle brackets (an attribute value), where a comment cannot go."""
    return source.rfind("<", 0, position) > source.rfind(">", 0, position)


def _parents_at(source: str, positions: list[int]) -> list[str | None]:
    """The innermost open MJML element at each position (None outside any)."""
    parents: list[str | None] = []
    stack: list[str] = []
    elements = iter(_MJ_TAG.finditer(source))
    pending = next(elements, None)
    for position in positions:
        while pending is not None and pending.start() < position:
            closing, name, self_closing = pending.group(1), pending.group(2), pending.group(3)
            if closing:
                while stack and stack.pop() != name:
                    pass
            elif not self_closing:
                stack.append(name)
            pending = next(elements, None)
        parents.append(stack[-1] if stack else None)
    return parents


def restore(text: str, tags: list[Tag]) -> str:
    """Put the original tags back in place of their token words."""
    return TOKEN.sub(lambda m: tags[int(m.group(1))].text, text)


def mjml_to_html(source: str, where: str) -> str:
    """Compile MJML (MRML) and inline its CSS, keeping @media rules for mobile."""
    try:
        html = mjml.mjml2html(source, fonts={})
    except Exception as exc:  # MRML reports parse errors as ValueError
        raise TemplateError(f"{where}: invalid MJML: {exc}", source=where, hint="check the MJML tags") from exc
    try:
        return str(_INLINER.inline(html))
    except Exception as exc:  # css_inline.InlineError
        raise TemplateError(f"{where}: CSS inlining failed: {exc}", source=where) from exc
