"""Previews: the exact email a person would get, as HTML, text and screenshots.

A preview renders through the same compile-once pipeline as a send (the MIME
bytes are built, then read back), with links left unsigned.  ``--sample N``
picks people so that, together, they show every block variant any of them
gets, and writes a contact sheet linking all their previews side by side.
"""

from __future__ import annotations

import email
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from tailormail.config import Settings
from tailormail.content import rules
from tailormail.content.batch import Addressee, DataSources, load_recipients
from tailormail.content.compile import compile_template
from tailormail.content.recommend import RecommendSettings, recommendation_source
from tailormail.content.render import Envelope, LinkSigner, RuleEvaluator, choose_variants, render_batch, unsigned
from tailormail.content.screenshot import VIEWPORTS, Viewport, find_chromium, png_size, screenshot
from tailormail.errors import NotFound, TailormailError
from tailormail.segments.definitions import load_segments
from tailormail.store import profiles as profile_q

PREVIEW_LINKS = {
    "unsubscribe": "https://example.invalid/unsubscribe/preview",
    "preferences": "https://example.invalid/preferences/preview",
    "view_in_browser": "https://example.invalid/view/preview",
    "open_pixel": "https://example.invalid/open/preview.gif",
}
"""Links in previews point nowhere: a preview is never sent, so nothing is signed."""


@dataclass
class Preview:
    """One person's preview: the files written and what they saw."""

    label: str
    subject: str
    html: Path
    text: Path
    variants: dict[str, str] = field(default_factory=dict)
    screenshots: dict[str, Path] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "label": self.label,
            "subject": self.subject,
            "html": str(self.html),
            "text": str(self.text),
            "variants": self.variants,
            "screenshots": {k: str(v) for k, v in self.screenshots.items()},
            "error": self.error,
        }


@dataclass(frozen=True)
class RenderedMail:
    """What the pipeline produced for one person (or why it produced nothing)."""

    label: str
    message: bytes | None
    subject: str = ""
    variants: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def parts_of(message: bytes) -> tuple[str, str]:
    """(html, text) bodies of a MIME message."""
    parsed: Message = email.message_from_bytes(message)
    found = {"text/html": "", "text/plain": ""}
    for part in parsed.walk():
        kind = part.get_content_type()
        if kind in found and not found[kind]:
            payload = part.get_payload(decode=True)
            charset = part.get_content_charset() or "utf-8"
            found[kind] = payload.decode(charset, "replace") if isinstance(payload, bytes) else ""
    return found["text/html"], found["text/plain"]


def slug(text: str) -> str:
    """A file-name-safe form of a label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "preview"


def write_previews(
    mails: Sequence[RenderedMail],
    out: Path,
    *,
    template: str,
    screenshots: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> list[Preview]:
    """Write each mail's HTML and text (and PNGs where Chromium is installed) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    chromium = find_chromium() if screenshots else None
    previews: list[Preview] = []
    for mail in mails:
        base = out / f"{slug(template)}--{slug(mail.label)}"
        html_body, text_body = parts_of(mail.message) if mail.message else (_failed_page(mail), mail.error or "")
        html_file, text_file = base.with_suffix(".html"), base.with_suffix(".txt")
        html_file.write_text(html_body, encoding="utf-8")
        text_file.write_text(text_body, encoding="utf-8")
        preview = Preview(mail.label, mail.subject, html_file, text_file, dict(mail.variants), error=mail.error)
        if chromium and mail.message:
            for viewport in VIEWPORTS:
                png = base.parent / f"{base.name}--{viewport.name}.png"
                preview.screenshots[viewport.name] = screenshot(chromium, html_file, png, viewport)
        previews.append(preview)
        if on_progress:
            on_progress(1)
    return previews


def _failed_page(mail: RenderedMail) -> str:
    return f"<!doctype html><p>No email for {html.escape(mail.label)}: {html.escape(mail.error or '')}</p>"


def contact_sheet(previews: Sequence[Preview], out: Path, *, template: str, now: datetime | None = None) -> Path:
    """An HTML page showing every preview (screenshots, else the HTML in a frame)."""
    cards = "\n".join(_card(p, out) for p in previews)
    stamp = (now or datetime.fromtimestamp(0, UTC)).isoformat(timespec="seconds")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(template)}: previews</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; background: #f4f4f6; color: #222; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }}
.card {{ background: #fff; border-radius: 8px; padding: 12px; box-shadow: 0 1px 3px #0002; }}
.card h2 {{ font-size: 15px; margin: 0 0 4px; }} .card p {{ font-size: 12px; margin: 2px 0 8px; color: #555; }}
.shots {{ display: flex; gap: 12px; align-items: flex-start; }}
.shots img {{ border: 1px solid #ddd; width: 300px; }} .shots img.mobile {{ width: 188px; }}
iframe {{ width: 600px; height: 700px; border: 1px solid #ddd; background: #fff; }}
.error {{ color: #b00; }}
</style></head><body>
<h1>{html.escape(template)}: {len(previews)} preview(s)</h1>
<p>Rendered {html.escape(stamp)}. Each card is one person; the variants line says which block variants they got.</p>
<div class="grid">
{cards}
</div></body></html>
"""
    sheet = out / f"{slug(template)}--contact-sheet.html"
    sheet.write_text(page, encoding="utf-8")
    return sheet


def _card(preview: Preview, out: Path) -> str:
    variants = ", ".join(f"{block}: {name}" for block, name in sorted(preview.variants.items())) or "no variants"
    if preview.error:
        body = f'<p class="error">No email: {html.escape(preview.error)}</p>'
    elif preview.screenshots:
        body = (
            '<div class="shots">'
            + "".join(
                f'<a href="{html.escape(_rel(png, out))}"><img class="{name}" src="{html.escape(_rel(png, out))}" '
                f'alt="{html.escape(preview.label)} on {name}"></a>'
                for name, png in preview.screenshots.items()
            )
            + "</div>"
        )
    else:
        body = f'<iframe src="{html.escape(_rel(preview.html, out))}" title="{html.escape(preview.label)}"></iframe>'
    return (
        f'<div class="card"><h2>{html.escape(preview.label)}</h2>'
        f"<p>Subject: {html.escape(preview.subject)}<br>{html.escape(variants)}<br>"
        f'<a href="{html.escape(_rel(preview.html, out))}">HTML</a> · '
        f'<a href="{html.escape(_rel(preview.text, out))}">text</a></p>{body}</div>'
    )


def _rel(path: Path, out: Path) -> str:
    try:
        return str(path.relative_to(out))
    except ValueError:
        return path.as_uri()


def cover_variants(choices: dict[int, dict[str, str]], n: int) -> list[int]:
    """Up to ``n`` people who, together, see every (block, variant) pair any of them sees.

    Greedy set cover: take the person adding the most unseen pairs (ties by
    id); once every pair is covered, fill with people whose combination of
    variants is new, then with anyone.
    """
    remaining = dict(sorted(choices.items()))
    pairs = {pid: set(v.items()) for pid, v in remaining.items()}
    chosen: list[int] = []
    seen: set[tuple[str, str]] = set()
    while len(chosen) < n and remaining:
        best = max(remaining, key=lambda pid: (len(pairs[pid] - seen), -pid))
        if not pairs[best] - seen:
            break
        chosen.append(best)
        seen |= pairs[best]
        remaining.pop(best)
    combos = {frozenset(pairs[pid]) for pid in chosen}
    for pid in list(remaining):
        if len(chosen) >= n:
            break
        if frozenset(pairs[pid]) not in combos:
            chosen.append(pid)
            combos.add(frozenset(pairs[pid]))
            remaining.pop(pid)
    chosen += list(remaining)[: max(0, n - len(chosen))]
    return chosen


def check_screenshot(png: Path, viewport: Viewport) -> None:
    """Raise when a screenshot is not the width asked for (a broken Chromium run)."""
    width, _ = png_size(png)
    if width != viewport.width:
        raise TailormailError(f"{png.name} is {width} px wide, expected {viewport.width}")


@dataclass
class PreviewRequest:
    """What to preview: a template for some people (user ids) or a sample covering the variants."""

    template: str
    user_ids: Sequence[str] = ()
    sample: int = 0
    pool: int = 2000
    """How many profiles ``sample`` chooses from."""


def render_mails(
    conn: Connection,
    settings: Settings,
    request: PreviewRequest,
    now: datetime,
    evaluate: RuleEvaluator | None = None,
    signer: LinkSigner = unsigned,
) -> list[RenderedMail]:
    """Render the request's people through the send pipeline (links unsigned unless ``signer``; nothing recorded)."""
    compiled = compile_template(settings.workspace, request.template)
    ids = _profile_ids(conn, request)
    now_ms = int(now.timestamp() * 1000)
    sources = DataSources(
        settings=settings,
        recommend=recommendation_source(now_ms, names=settings.events, settings=RecommendSettings.of(settings)),
        links_for=lambda _r: dict(PREVIEW_LINKS),
    )
    variants = choose_variants(compiled, ids, evaluate or rules.segment_evaluator(conn, settings, now_ms))
    if request.sample:
        ids = cover_variants({pid: _names(variants[pid]) for pid in ids}, request.sample)
    recipients = load_recipients(conn, [Addressee(pid, f"preview:{pid}") for pid in ids], sources)
    segments = tuple(sorted(load_segments(settings)))
    envelope = Envelope("preview@example.invalid", "preview.invalid", now, {"name": "preview"}, segments)
    results = render_batch(compiled, recipients, envelope, signer=signer, variants=variants)
    labels = _labels(conn, ids)
    return [
        RenderedMail(labels[r.profile_id], r.message, r.subject, _names(variants[r.profile_id]), r.error)
        for r in results
    ]


def _names(chosen: dict[str, Any]) -> dict[str, str]:
    """Block -> variant name (the flags beside them are for templates)."""
    return {k: v for k, v in chosen.items() if isinstance(v, str)}


def _profile_ids(conn: Connection, request: PreviewRequest) -> list[int]:
    if request.user_ids:
        found = profile_q.profile_ids_by_user(conn, request.user_ids)
        missing = [u for u in request.user_ids if u not in found]
        if missing:
            raise NotFound(f"no profile with user id {missing[0]!r}", hint="check the id, or use --sample N")
        return [found[u] for u in request.user_ids]
    ids: list[int] = []
    for profile in profile_q.iter_profiles(conn, batch=1000):
        if profile["user_id"] and (profile["traits"] or {}).get("email"):
            ids.append(profile["id"])
        if len(ids) >= request.pool:
            break
    if not ids:
        raise NotFound("no profile with an email address to preview", hint="ingest identify calls with traits.email")
    return ids


def _labels(conn: Connection, ids: Sequence[int]) -> dict[int, str]:
    labels = {}
    for pid in ids:
        row = profile_q.get_profile(conn, profile_id=pid)
        labels[pid] = f"user {row['user_id']}" if row and row["user_id"] else f"profile {pid}"
    return labels
