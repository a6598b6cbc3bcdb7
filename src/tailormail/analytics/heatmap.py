"""Heatmaps: clicks per link of a template, as tables and drawn over the email's screenshot.

Every tracked link of a compiled template is a numbered slot, and every
``email_clicked`` event carries the slot id (``link_id``), its block and its
position.  Counting clicks per slot gives the tables; the picture is the
template rendered for one real person, with each slot's links marked so a
small injected script can find them and draw a translucent box over each,
sized and coloured by its share of the clicks, with the count beside it.
Chromium takes the screenshot.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from sqlalchemy import Connection

from tailormail.config import Settings
from tailormail.content.preview import PreviewRequest, parts_of, render_mails
from tailormail.content.screenshot import Viewport, find_chromium, screenshot
from tailormail.errors import TailormailError
from tailormail.store import analytics as q

MARK = "https://heatmap.tailormail.invalid/slot/"
"""Links of the heatmap's email point here (then the slot id), so the overlay script can find them."""

VIEWPORT = Viewport("heatmap", 600, 3000)
"""The classic email width; tall enough for long emails (the empty band below is trimmed)."""

TOP_URLS = 5
"""How many destinations each link lists (a link in a loop, like a product grid, has many)."""


@dataclass
class LinkStat:
    """Clicks on one link (slot) of a template."""

    link_id: int
    block: str | None
    position: int | None
    clicks: int = 0
    emails: set[str] = field(default_factory=set)
    urls: Counter[str] = field(default_factory=Counter)

    @property
    def unique_clicks(self) -> int:
        """Emails whose recipient clicked this link at least once."""
        return len(self.emails)


@dataclass
class HeatmapData:
    """Clicks per link and per block of one template (optionally one campaign or journey)."""

    template: str
    links: list[LinkStat]
    delivered: int = 0

    @property
    def clicks(self) -> int:
        """All clicks on the template's links."""
        return sum(link.clicks for link in self.links)

    def share(self, link: LinkStat) -> float:
        """The share of all clicks that went to ``link``."""
        return link.clicks / self.clicks if self.clicks else 0.0

    def link_rows(self) -> list[dict[str, Any]]:
        """One row per link, most clicked first: clicks, share, unique clicks, click rate, top destinations."""
        return [
            {
                "link_id": link.link_id,
                "block": link.block or "",
                "position": link.position,
                "clicks": link.clicks,
                "share": self.share(link),
                "unique_clicks": link.unique_clicks,
                "click_rate": link.unique_clicks / self.delivered if self.delivered else 0.0,
                "top_urls": [[url, n] for url, n in link.urls.most_common(TOP_URLS)],
            }
            for link in sorted(self.links, key=lambda s: (-s.clicks, s.link_id))
        ]

    def block_rows(self) -> list[dict[str, Any]]:
        """One row per block, most clicked first: which content gets the clicks."""
        clicks: Counter[str] = Counter()
        emails: dict[str, set[str]] = defaultdict(set)
        for link in self.links:
            clicks[link.block or ""] += link.clicks
            emails[link.block or ""] |= link.emails
        return [
            {
                "block": block,
                "clicks": n,
                "share": n / self.clicks if self.clicks else 0.0,
                "unique_clicks": len(emails[block]),
                "click_rate": len(emails[block]) / self.delivered if self.delivered else 0.0,
            }
            for block, n in sorted(clicks.items(), key=lambda kv: (-kv[1], kv[0]))
        ]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "template": self.template,
            "delivered": self.delivered,
            "clicks": self.clicks,
            "links": self.link_rows(),
            "blocks": self.block_rows(),
        }


def link_clicks(
    conn: Connection,
    *,
    template: str | None = None,
    campaign: str | None = None,
    journey: str | None = None,
    include_automated: bool = False,
) -> list[HeatmapData]:
    """Clicks per link for each template (or just ``template``), most clicked template first.

    Scanner clicks (flagged automated at the tracking endpoint) are left out
    unless asked for: they click every link and would flatten the picture.
    """
    wanted = {"template": template, "campaign": campaign, "journey": journey}
    found: dict[str, dict[int, LinkStat]] = defaultdict(dict)
    for event in q.events_named(conn, ["email_clicked"]):
        props = event["properties"] or {}
        if (props.get("automated") and not include_automated) or not isinstance(props.get("link_id"), int):
            continue
        if any(value is not None and props.get(name) != value for name, value in wanted.items()):
            continue
        name = str(props.get("template") or "(unknown)")
        link = found[name].get(props["link_id"])
        if link is None:
            link = found[name][props["link_id"]] = LinkStat(props["link_id"], props.get("block"), props.get("position"))
        link.clicks += 1
        link.emails.add(str(props.get("message_key")))
        link.urls[without_utm(str(props.get("url") or ""))] += 1
    delivered = q.delivered_by_template(conn, campaign=campaign, journey=journey)
    out = [HeatmapData(name, list(links.values()), delivered.get(name, 0)) for name, links in found.items()]
    if template is not None and not out:
        out = [HeatmapData(template, [], delivered.get(template, 0))]
    return sorted(out, key=lambda d: (-d.clicks, d.template))


def without_utm(url: str) -> str:
    """``url`` without its utm_* parameters (they are the same on every link of a send)."""
    parts = urlsplit(url)
    if "utm_" not in parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    return urlunsplit(parts._replace(query=urlencode(query)))


def marking_signer(_key: str, slot: Any, url: str) -> str:
    """A content LinkSigner that points each link at its slot's mark (the heatmap's email is never sent)."""
    return f"{MARK}{slot.id}/?to={quote(url, safe='')}"


OVERLAY = """<script>
(function () {
  var data = __DATA__;
  var most = 0, id;
  for (id in data) { most = Math.max(most, data[id].clicks); }
  function box(el) {
    var r = el.getBoundingClientRect(), x0 = r.left, y0 = r.top, x1 = r.right, y1 = r.bottom;
    var kids = el.querySelectorAll('*');
    for (var i = 0; i < kids.length; i++) {
      var k = kids[i].getBoundingClientRect();
      if (k.width && k.height) {
        x0 = Math.min(x0, k.left); y0 = Math.min(y0, k.top); x1 = Math.max(x1, k.right); y1 = Math.max(y1, k.bottom);
      }
    }
    return [x0 + window.scrollX, y0 + window.scrollY, x1 - x0, y1 - y0];
  }
  function add(style, text) {
    var d = document.createElement('div');
    d.setAttribute('style', 'position:absolute;z-index:2147483647;pointer-events:none;box-sizing:border-box;' + style);
    if (text) { d.textContent = text; }
    document.body.appendChild(d);
  }
  var links = document.querySelectorAll('a[href^="__MARK__"]');
  for (var i = 0; i < links.length; i++) {
    var slot = links[i].getAttribute('href').slice(__MARK_LENGTH__).split('/')[0];
    var d = data[slot] || {clicks: 0, share: 0};
    var b = box(links[i]);
    if (!b[2] || !b[3]) { continue; }
    var rel = most ? d.clicks / most : 0, pad = Math.round(2 + 8 * rel);
    var where = 'left:' + (b[0] - pad) + 'px;top:' + (b[1] - pad) + 'px;width:' + (b[2] + 2 * pad) +
      'px;height:' + (b[3] + 2 * pad) + 'px;';
    if (!d.clicks) {
      add(where + 'border:1px dashed rgba(90,90,90,.8);');
    } else {
      add(where + 'background:rgba(230,30,30,' + (0.2 + 0.5 * rel).toFixed(2) + ');border:2px solid rgba(180,0,0,.9);');
    }
    add('left:' + Math.max(0, b[0] + b[2] + pad - 4) + 'px;top:' + Math.max(0, b[1] - pad - 9) + 'px;' +
      'background:' + (d.clicks ? '#a40000' : '#666') + ';color:#fff;font:bold 11px/15px sans-serif;' +
      'padding:0 5px;border-radius:7px;white-space:nowrap;transform:translateX(-100%);',
      d.clicks + (d.clicks === 1 ? ' click' : ' clicks') + ' \\u00b7 ' + Math.round(100 * d.share) + '%');
  }
})();
</script>"""


def annotated_html(email_html: str, data: HeatmapData) -> str:
    """The email's HTML with the overlay script that draws one box per marked link."""
    payload = {str(link.link_id): {"clicks": link.clicks, "share": data.share(link)} for link in data.links}
    script = (
        OVERLAY.replace("__DATA__", json.dumps(payload))
        .replace("__MARK_LENGTH__", str(len(MARK)))
        .replace("__MARK__", MARK)
    )
    lower = email_html.lower()
    end = lower.rfind("</body>")
    return email_html[:end] + script + email_html[end:] if end >= 0 else email_html + script


def email_for_heatmap(
    conn: Connection, settings: Settings, template: str, now: datetime, user_id: str | None = None
) -> str:
    """The template's HTML for one person (``user_id``, else the one showing the most variants), links marked."""
    request = PreviewRequest(template, user_ids=[user_id] if user_id else [], sample=0 if user_id else 1)
    [mail] = render_mails(conn, settings, request, now, signer=marking_signer)[:1]
    if mail.message is None:
        raise TailormailError(f"cannot render {template} for {mail.label}: {mail.error}", hint="try --user USER_ID")
    return parts_of(mail.message)[0]


def draw(email_html: str, data: HeatmapData, out: Path, chromium: str | None = None) -> Path:
    """Write the heatmap PNG of ``email_html`` to ``out``; raise TailormailError without Chromium."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise TailormailError(
            "Chromium is not installed, so the heatmap picture cannot be drawn", hint="apt-get install chromium"
        )
    with tempfile.TemporaryDirectory(prefix="tailormail-heatmap-") as folder:
        page = Path(folder) / f"{data.template}.html"
        page.write_text(annotated_html(email_html, data), encoding="utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        return screenshot(chromium, page, out, VIEWPORT)


def picture_maker(conn: Connection, settings: Settings, now: datetime) -> Callable[[HeatmapData], bytes]:
    """A function drawing a template's heatmap as PNG bytes (for the report); raises TailormailError."""

    def make(data: HeatmapData) -> bytes:
        if find_chromium() is None:
            raise TailormailError("Chromium is not installed (apt-get install chromium)")
        html = email_for_heatmap(conn, settings, data.template, now)
        with tempfile.TemporaryDirectory(prefix="tailormail-heatmap-") as folder:
            return draw(html, data, Path(folder) / "heatmap.png").read_bytes()

    return make
