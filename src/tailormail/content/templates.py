"""Reading templates, blocks and layouts from a workspace folder.

A template is ``templates/NAME.liquid`` or ``templates/NAME.hbs``: optional YAML
front matter (subject, preheader, layout, from_name, required) and a body of
MJML sections (or plain HTML/text, wrapped in one section).  A sidecar
``templates/NAME.yaml`` may hold the same settings instead.  A block is
``blocks/NAME.liquid|.hbs`` with optional ``variants`` in its front matter.
A layout is ``templates/layouts/NAME.mjml`` with ``[[content]]``,
``[[preheader]]`` and ``[[subject]]`` where those go.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tailormail.content.engines import LANGUAGES, Language, TemplateError
from tailormail.errors import NotFound

TEMPLATE_KEYS = frozenset({"subject", "preheader", "layout", "from_name", "required", "description", "tags"})
BLOCK_KEYS = frozenset({"description", "variants"})
VARIANT_KEYS = frozenset({"name", "rule", "content"})


@dataclass(frozen=True)
class SourceFile:
    """A file's text, front matter and where its body starts."""

    path: Path
    meta: dict[str, Any]
    body: str
    body_line: int
    digest: str


@dataclass(frozen=True)
class Variant:
    """One content rule of a block: when ``rule`` matches the person, show ``content``."""

    name: str
    rule: dict[str, Any]
    content: str


@dataclass(frozen=True)
class Block:
    """A reusable partial with optional variants (first match wins, else the body)."""

    name: str
    language: Language
    default: str
    variants: tuple[Variant, ...] = ()
    digest: str = ""
    path: Path | None = None


@dataclass(frozen=True)
class TemplateSource:
    """A template file as read: language, body and settings."""

    name: str
    language: Language
    body: str
    body_line: int
    subject: str
    preheader: str = ""
    layout: str = "default"
    from_name: str = ""
    required: tuple[str, ...] = ()
    digest: str = ""
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def read_source(path: Path) -> SourceFile:
    """Read a file with optional ``---`` YAML front matter."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    meta: dict[str, Any] = {}
    body, body_line = text, 1
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end == -1:
            raise TemplateError(f"{path}: front matter has no closing ---", source=str(path), line=1)
        try:
            loaded = yaml.safe_load(text[4:end]) or {}
        except yaml.YAMLError as exc:
            raise TemplateError(f"{path}: front matter: {exc}", source=str(path), hint="fix the YAML") from exc
        if not isinstance(loaded, dict):
            raise TemplateError(f"{path}: front matter must be a mapping", source=str(path), line=2)
        meta = loaded
        after = text.find("\n", end + 4)
        body = text[after + 1 :] if after != -1 else ""
        body_line = text.count("\n", 0, after + 1) + 1
    return SourceFile(path, meta, body, body_line, hashlib.sha256(raw).hexdigest())


def _find(folder: Path, name: str, kind: str) -> Path:
    for extension in LANGUAGES:
        candidate = folder / f"{name}{extension}"
        if candidate.is_file():
            return candidate
    raise NotFound(f"{kind} {name!r} not found in {folder}", hint=f"create {folder / name}.liquid (or .hbs)")


def load_template(workspace: Path, name: str) -> TemplateSource:
    """Read ``templates/NAME.liquid|.hbs`` (and its ``NAME.yaml`` sidecar)."""
    path = _find(workspace / "templates", name, "template")
    source = read_source(path)
    meta = dict(source.meta)
    digest = source.digest
    sidecar = path.with_suffix(".yaml")
    if sidecar.is_file():
        extra = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
        if not isinstance(extra, dict):
            raise TemplateError(f"{sidecar}: must be a mapping", source=str(sidecar), line=1)
        meta = {**extra, **meta}
        digest = hashlib.sha256((digest + hashlib.sha256(sidecar.read_bytes()).hexdigest()).encode()).hexdigest()
    _check_keys(meta, TEMPLATE_KEYS, path)
    if not meta.get("subject"):
        raise TemplateError(
            f"{path}: no subject", field="subject", source=str(path), hint="add `subject:` to the front matter"
        )
    required = meta.get("required") or []
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise TemplateError(f"{path}: required must be a list of paths", field="required", source=str(path))
    return TemplateSource(
        name=name,
        language=LANGUAGES[path.suffix],
        body=source.body,
        body_line=source.body_line,
        subject=str(meta["subject"]),
        preheader=str(meta.get("preheader") or ""),
        layout=str(meta.get("layout") or "default"),
        from_name=str(meta.get("from_name") or ""),
        required=tuple(required),
        digest=digest,
        path=path,
        meta=meta,
    )


def load_block(workspace: Path, name: str, language: Language) -> Block:
    """Read ``blocks/NAME`` in the template's language (or a tag-free block in the other)."""
    folder = workspace / "blocks"
    own = folder / f"{name}{language.extension}"
    path = own if own.is_file() else _find(folder, name, "block")
    source = read_source(path)
    _check_keys(source.meta, BLOCK_KEYS, path)
    block_language = LANGUAGES[path.suffix]
    variants = tuple(_variant(v, i, path) for i, v in enumerate(source.meta.get("variants") or []))
    texts = [source.body, *(v.content for v in variants)]
    if block_language is not language and any(language.tags(t) or block_language.tags(t) for t in texts):
        raise TemplateError(
            f"{path}: block {name!r} is written in {block_language.name}, the template in {language.name}",
            source=str(path),
            hint=f"add blocks/{name}{language.extension}",
        )
    return Block(name, block_language, source.body, variants, source.digest, path)


def _variant(raw: Any, index: int, path: Path) -> Variant:
    where = f"variants[{index}]"
    if not isinstance(raw, dict):
        raise TemplateError(f"{path}: {where} must be a mapping", field=where, source=str(path))
    _check_keys(raw, VARIANT_KEYS, path, prefix=f"{where}.")
    name, rule, content = raw.get("name"), raw.get("rule"), raw.get("content")
    if not isinstance(name, str) or not name.isidentifier():
        raise TemplateError(f"{path}: {where}.name must be a word", field=f"{where}.name", source=str(path))
    if not isinstance(rule, dict):
        raise TemplateError(f"{path}: {where}.rule must be a segment rule", field=f"{where}.rule", source=str(path))
    if not isinstance(content, str):
        raise TemplateError(f"{path}: {where}.content must be text", field=f"{where}.content", source=str(path))
    return Variant(name, rule, content)


def load_layout(workspace: Path, name: str) -> tuple[str, str]:
    """The layout's MJML and its digest (workspace file, else the built-in default)."""
    path = workspace / "templates" / "layouts" / f"{name}.mjml"
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    elif name == "default":
        text = resources.files("tailormail.content").joinpath("preset_files/layouts/default.mjml").read_text("utf-8")
    else:
        raise NotFound(f"layout {name!r} not found", hint=f"create {path}")
    return text, hashlib.sha256(text.encode()).hexdigest()


def template_names(workspace: Path) -> list[str]:
    """Every template in the workspace, by name."""
    folder = workspace / "templates"
    return sorted({p.stem for ext in LANGUAGES for p in folder.glob(f"*{ext}")}) if folder.is_dir() else []


def _check_keys(meta: dict[str, Any], known: frozenset[str], path: Path, prefix: str = "") -> None:
    for key in meta:
        if key not in known:
            raise TemplateError(
                f"{path}: unknown setting {prefix}{key}",
                field=f"{prefix}{key}",
                source=str(path),
                hint=f"known: {', '.join(sorted(known))}",
            )
