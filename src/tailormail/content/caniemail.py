"""Which email clients support an HTML or CSS feature, from the caniemail data.

The data (``data/caniemail.json``, MIT licence in ``data/LICENSE-caniemail``)
lists, per feature, each client's support by platform and version.  We read
the latest tested version of each platform of the clients most people read
mail in, and detect features in template source text with line numbers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

CLIENTS: dict[str, list[tuple[str, str]]] = {
    "Gmail": [("gmail", "desktop-webmail"), ("gmail", "ios"), ("gmail", "android")],
    "Outlook on Windows": [("outlook", "windows")],
    "Apple Mail": [("apple-mail", "macos"), ("apple-mail", "ios")],
    "Yahoo": [("yahoo", "desktop-webmail")],
}
"""The clients lint checks: display name -> (caniemail family, platform) pairs."""


@dataclass(frozen=True)
class Feature:
    """One caniemail feature and the checked clients that do not support it."""

    slug: str
    title: str
    url: str
    unsupported: tuple[str, ...]


@dataclass(frozen=True)
class Use:
    """A feature found in source text, at a 1-based line."""

    feature: Feature
    line: int
    text: str


@cache
def data() -> dict[str, Any]:
    """The parsed caniemail.json shipped with tailormail."""
    path = resources.files("tailormail.content").joinpath("data/caniemail.json")
    return dict(json.loads(path.read_text(encoding="utf-8")))


def latest_support(stats: dict[str, Any], family: str, platform: str) -> str | None:
    """The support letter (y, a, n, u) of the latest tested version, if tested."""
    versions = stats.get(family, {}).get(platform)
    if not versions:
        return None
    # caniemail lists versions oldest first; the value may carry notes ("a #1").
    return str(list(versions.values())[-1]).split()[0]


@cache
def features() -> dict[str, Feature]:
    """Every feature with at least one checked client that lacks support, by slug."""
    found: dict[str, Feature] = {}
    for entry in data()["data"]:
        missing = tuple(
            client
            for client, platforms in CLIENTS.items()
            if any(latest_support(entry.get("stats", {}), f, p) == "n" for f, p in platforms)
        )
        if missing:
            found[entry["slug"]] = Feature(entry["slug"], entry["title"], entry["url"], missing)
    return found


_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)\b([^>]*)>")
_ATTR = re.compile(r"\s([a-zA-Z-]+)\s*=")
_DECL = re.compile(r"(?<![\w-])([a-z-]+)\s*:\s*([^;}\"]+)")
_AT_RULE = re.compile(r"@([a-z-]+)")
_PSEUDO = re.compile(r"(?<=[\w\])]):{1,2}([a-z-]+)")
_STYLE_BLOCK = re.compile(r"<(style|mj-style)\b[^>]*>(.*?)</\1>", re.S | re.I)
_STYLE_ATTR = re.compile(r"\sstyle\s*=\s*\"([^\"]*)\"", re.I)
_VALUE_FEATURES = {
    "linear-gradient(": "css-linear-gradient",
    "radial-gradient(": "css-radial-gradient",
    "conic-gradient(": "css-conic-gradient",
    "var(": "css-variables",
    "calc(": "css-unit-calc",
    "clamp(": "css-function-clamp",
    "!important": "css-important",
}
_ATTRIBUTE_FEATURES = {"srcset": "html-srcset", "loading": "html-loading-attribute", "role": "html-role"}
_IMAGE_FEATURES = {".webp": "image-webp", ".svg": "image-svg", ".avif": "image-avif", "data:image/": "image-base64"}


def uses_in(source: str) -> list[Use]:
    """Unsupported features used in HTML or MJML source, first use of each per line."""
    known = features()
    seen: set[tuple[str, int]] = set()
    found: list[Use] = []
    for slug, offset, text in _candidates(source):
        line = source.count("\n", 0, offset) + 1
        if slug in known and (slug, line) not in seen:
            seen.add((slug, line))
            found.append(Use(known[slug], line, text.strip()[:60]))
    return sorted(found, key=lambda u: (u.line, u.feature.slug))


def _candidates(source: str) -> list[tuple[str, int, str]]:
    """(slug, offset, text) for every element, attribute and CSS construct seen."""
    found: list[tuple[str, int, str]] = []
    for tag in _TAG.finditer(source):
        found.append((f"html-{tag.group(1).lower()}", tag.start(), tag.group(0)))
        for attr in _ATTR.finditer(tag.group(2)):
            slug = _ATTRIBUTE_FEATURES.get(attr.group(1).lower())
            if slug:
                found.append((slug, tag.start(), attr.group(0)))
    for needle, slug in _IMAGE_FEATURES.items():
        found.extend((slug, m.start(), m.group(0)) for m in re.finditer(re.escape(needle), source, re.I))
    for block in _STYLE_BLOCK.finditer(source):
        found.extend(_css_candidates(block.group(2), block.start(2), at_rules=True))
    for attr in _STYLE_ATTR.finditer(source):
        found.extend(_css_candidates(attr.group(1), attr.start(1), at_rules=False))
    return found


def _css_candidates(css: str, base: int, *, at_rules: bool) -> list[tuple[str, int, str]]:
    found: list[tuple[str, int, str]] = []
    for decl in _DECL.finditer(css):
        prop, value = decl.group(1).lower(), decl.group(2).lower()
        found.append((f"css-{prop}", base + decl.start(), decl.group(0)))
        if prop == "display" and value.strip().split()[0:1] in (["flex"], ["grid"], ["none"]):
            found.append((f"css-display-{value.strip().split()[0]}", base + decl.start(), decl.group(0)))
        for needle, slug in _VALUE_FEATURES.items():
            if needle in value:
                found.append((slug, base + decl.start(), decl.group(0)))
    if at_rules:
        for rule in _AT_RULE.finditer(css):
            found.append((f"css-at-{rule.group(1).lower()}", base + rule.start(), rule.group(0)))
        for pseudo in _PSEUDO.finditer(css):
            name = pseudo.group(1).lower()
            kind = (
                "pseudo-element" if pseudo.group(0).startswith("::") or name in ("before", "after") else "pseudo-class"
            )
            found.append((f"css-{kind}-{name}", base + pseudo.start(), pseudo.group(0)))
    return found
