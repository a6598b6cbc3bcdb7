"""The plain-text part, generated from the compiled HTML once per template version.

Links are kept as ``text (url)``, list items get a dash, headings and
paragraphs are separated by blank lines, and what the reader never sees in the
HTML (head, styles, the hidden preheader, Outlook-only comments) is left out.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tailormail.content.layout import COMMENT_TOKEN

_BLOCKS = frozenset(
    {"p", "div", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "section", "hr", "br"}
)
_SKIP = frozenset({"head", "style", "script", "title"})
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "source", "wbr"})
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)


class _TextWriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip: list[str] = []  # open elements whose content is not shown
        self.link: tuple[str, list[str]] | None = None
        self.link_has_text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if self.skip:
            if tag not in _VOID:
                self.skip.append(tag)
            return
        if tag in _SKIP or _HIDDEN.search(values.get("style", "")):
            if tag not in _VOID:
                self.skip.append(tag)
            return
        if tag in _BLOCKS:
            self._newline(blank=tag in ("p", "h1", "h2", "h3", "table"))
        if tag == "li":
            self.out.append("- ")
        elif tag == "a":
            self.link, self.link_has_text = (values.get("href", ""), []), False

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if self.skip[-1] == tag:
                self.skip.pop()
            return
        if tag == "a" and self.link is not None:
            href, label_parts = self.link
            self.link = None
            label = " ".join(" ".join(label_parts).split())
            if not self.link_has_text:
                return  # an image-only link: its text twin says the same in the plain part
            if href and label and label != href:
                self.out.append(f"{label} ({href})")
            elif href:
                self.out.append(href)
            else:
                self.out.append(label)
        elif tag in _BLOCKS:
            self._newline(blank=tag in ("p", "h1", "h2", "h3", "table"))

    def handle_comment(self, data: str) -> None:
        # Template block tags travel through layout as comments (see layout.py): keep them.
        if not self.skip and COMMENT_TOKEN.match(data):
            (self.link[1] if self.link is not None else self.out).append(f"<!--{data}-->")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        text = re.sub(r"\s+", " ", data)
        if self.link is not None:
            self.link[1].append(text)
            self.link_has_text = self.link_has_text or bool(text.strip())
        elif text.strip() or (self.out and not self.out[-1].endswith((" ", "\n"))):
            self.out.append(text)

    def _newline(self, *, blank: bool) -> None:
        self.out.append("\n\n" if blank else "\n")


def html_to_text(html: str) -> str:
    """Readable plain text for an HTML email (links as ``text (url)``)."""
    writer = _TextWriter()
    writer.feed(html)
    writer.close()
    return tidy("".join(writer.out))


def tidy(text: str) -> str:
    """Strip line ends and collapse runs of blank lines to one."""
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
