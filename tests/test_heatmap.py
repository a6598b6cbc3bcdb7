"""Heatmaps: clicks per link and block from real tracking hits, drawn over a real Chromium screenshot."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from conftest import IN_CI
from outbox_helpers import send_plain
from tailormail.analytics.heatmap import (
    MARK,
    HeatmapData,
    LinkStat,
    annotated_html,
    draw,
    email_for_heatmap,
    link_clicks,
    picture_maker,
    without_utm,
)
from tailormail.analytics.report import ReportOptions, build_report
from tailormail.api.app import create_app
from tailormail.cli import app
from tailormail.clock import ManualClock, to_ms
from tailormail.content.compile import compile_template
from tailormail.content.screenshot import Viewport, find_chromium, screenshot
from tailormail.runtime import Runtime
from tailormail.track import links
from test_track import BASE, BROWSER

BUTTON = "display:block;color:#ffffff;padding:30px;font-size:24px;background:"
TEMPLATE = f"""---
subject: Picks for you
---
<mj-section><mj-column>
<mj-text><a href="https://shop.example/shoes" style="{BUTTON}#00c000">Shoes</a></mj-text>
<mj-text><a href="https://shop.example/hats" style="{BUTTON}#0000ff">Hats</a></mj-text>
</mj-column></mj-section>
"""
USERS = [f"u{i}" for i in range(6)]

UTM_CASES = [
    ("https://s.example/p?id=3&utm_source=mail&utm_medium=email", "https://s.example/p?id=3", "utm dropped"),
    ("https://s.example/p?id=3", "https://s.example/p?id=3", "nothing to drop"),
    ("https://s.example/p?utm_campaign=x", "https://s.example/p", "only utm"),
]


@pytest.mark.parametrize(("url", "expected", "why"), UTM_CASES, ids=[c[2] for c in UTM_CASES])
def test_without_utm(url: str, expected: str, why: str) -> None:
    assert without_utm(url) == expected, why


def test_tables_rank_links_and_blocks_by_clicks() -> None:
    data = HeatmapData(
        "t",
        [
            LinkStat(0, "hero", 1, clicks=2, emails={"a"}),
            LinkStat(1, "grid", 2, clicks=5, emails={"a", "b", "c"}),
            LinkStat(2, "grid", 3, clicks=3, emails={"c"}),
        ],
        delivered=10,
    )
    assert [r["link_id"] for r in data.link_rows()] == [1, 2, 0]
    assert data.link_rows()[0]["share"] == 0.5 and data.link_rows()[0]["click_rate"] == 0.3
    assert data.block_rows() == [
        {"block": "grid", "clicks": 8, "share": 0.8, "unique_clicks": 3, "click_rate": 0.3},
        {"block": "hero", "clicks": 2, "share": 0.2, "unique_clicks": 1, "click_rate": 0.1},
    ]


def test_overlay_is_injected_before_the_body_ends() -> None:
    data = HeatmapData("t", [LinkStat(4, None, 1, clicks=3)])
    page = annotated_html("<html><body><p>x</p></BODY></html>", data)
    assert page.index("<script>") < page.index("</BODY>")
    assert json.dumps({"4": {"clicks": 3, "share": 1.0}}) in page and MARK in page


def shop(runtime: Runtime, clock: ManualClock, clicks: dict[str, int]) -> dict[int, int]:
    """Send the heat template to six people and click its links through the real endpoint.

    ``clicks`` maps a link's URL to how many people click it; returns slot id -> clicks.
    """
    root = runtime.settings.workspace
    (root / "templates" / "heat.liquid").write_text(TEMPLATE)
    slots = {s.url: s for s in compile_template(root, "heat").slots if s.kind == "tracked"}
    runtime.ingestor.ingest_raw(
        [{"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com"}} for u in USERS]
    )
    sent = send_plain(runtime, clock, {u: {"key": f"heat/{u}", "template": "heat"} for u in USERS})
    keys = [sent[u] for u in USERS]
    clock.advance(timedelta(hours=1))
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        for url, n in clicks.items():
            for key, pid in keys[:n]:
                tracked = links.click_url(BASE, runtime.settings.secret, key, pid, slots[url], url + "?utm_source=x")
                assert client.get(tracked.removeprefix(BASE), headers={"User-Agent": BROWSER}).status_code == 302
        key, pid = keys[0]  # a security scanner clicks too: flagged automated, left out by default
        bot = links.click_url(BASE, runtime.settings.secret, key, pid, slots["https://shop.example/hats"], "https://x")
        client.get(bot.removeprefix(BASE), headers={"User-Agent": "python-requests/2.31"})
    return {slots[url].id: n for url, n in clicks.items()}


def test_clicks_per_link_come_from_tracking_events(runtime: Runtime, clock: ManualClock) -> None:
    expected = shop(runtime, clock, {"https://shop.example/shoes": 5, "https://shop.example/hats": 1})
    with runtime.store.read() as conn:
        [data] = link_clicks(conn, template="heat")
        [with_bots] = link_clicks(conn, template="heat", include_automated=True)
        assert link_clicks(conn, template="heat", campaign="other")[0].clicks == 0
    assert {link.link_id: link.clicks for link in data.links} == expected
    assert with_bots.clicks == data.clicks + 1
    assert data.delivered == 6
    top = data.link_rows()[0]
    assert top["top_urls"] == [["https://shop.example/shoes", 5]] and top["click_rate"] == 5 / 6


def need_chromium() -> str:
    found = find_chromium()
    if found is None:
        if IN_CI:
            pytest.fail("CI must run screenshot tests: .ci/run installs chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return found


def region(png: Path, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """The bounding box of pixels of one colour (a link's own background)."""
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=int)
    ys, xs = np.nonzero(np.abs(pixels - np.array(colour)).max(axis=2) < 12)
    assert len(xs), f"no pixel of colour {colour}"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def pixel(png: Path, x: int, y: int) -> tuple[int, int, int]:
    with Image.open(png) as image:
        return image.convert("RGB").getpixel((x, y))  # type: ignore[return-value]


def test_heatmap_draws_a_box_where_the_clicked_link_is(runtime: Runtime, clock: ManualClock, tmp_path: Path) -> None:
    chromium = need_chromium()
    shop(runtime, clock, {"https://shop.example/shoes": 6})
    with runtime.store.read() as conn:
        [data] = link_clicks(conn, template="heat")
        page = email_for_heatmap(conn, runtime.settings, "heat", clock.now())
    assert page.count(MARK) == 2  # both tracked links are marked, the shoes one and the unclicked hats one
    plain_html = tmp_path / "plain.html"
    plain_html.write_text(page)
    plain = screenshot(chromium, plain_html, tmp_path / "plain.png", Viewport("plain", 600, 3000))
    heat = draw(page, data, tmp_path / "heat.png", chromium)
    shoes, hats = region(plain, (0, 192, 0)), region(plain, (0, 0, 255))
    middle = ((shoes[0] + shoes[2]) // 2, (shoes[1] + shoes[3]) // 2)
    r, g, b = pixel(heat, *middle)
    assert r > 120 and r > g + 40 and r > b + 80, (r, g, b)  # the green link is under a red box now
    above = (middle[0], shoes[1] - 4)  # the box is larger than the link (sized by its share)
    assert pixel(plain, *above)[0] > 200 and pixel(heat, *above)[1] < 200
    hats_middle = ((hats[0] + hats[2]) // 2, (hats[1] + hats[3]) // 2)
    assert pixel(heat, *hats_middle) == pixel(plain, *hats_middle)  # no clicks: no fill


def test_heatmap_command_prints_tables_and_writes_the_png(
    runtime: Runtime, clock: ManualClock, workspace: Path, tmp_path: Path
) -> None:
    shop(runtime, clock, {"https://shop.example/shoes": 4, "https://shop.example/hats": 2})
    out = tmp_path / "heat.png"
    result = CliRunner().invoke(app, ["heatmap", "heat", "--out", str(out), "--json", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [r["clicks"] for r in report["links"]] == [4, 2] and report["blocks"][0]["clicks"] == 6
    if find_chromium() is not None:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and report["picture"] == str(out)
    else:
        assert report["picture"] is None and "Chromium" in report["picture_missing"]


def test_report_embeds_the_heatmap_or_says_why_not(runtime: Runtime, clock: ManualClock) -> None:
    shop(runtime, clock, {"https://shop.example/shoes": 3})
    with runtime.store.read() as conn:
        without = build_report(conn, to_ms(clock.now()), ReportOptions())
        drawn = build_report(
            conn, to_ms(clock.now()), ReportOptions(), picture_maker(conn, runtime.settings, clock.now())
        )
    for page in (without, drawn):
        assert "Which links get the clicks" in page and "https://shop.example/shoes (3)" in page
    assert 'alt="clicks per link of heat"' not in without and "built without Chromium screenshots" in without
    if find_chromium() is not None:
        assert re.search(r'alt="clicks per link of heat" [^>]*src="data:image/png;base64,iVBORw0KGgo', drawn)
    else:
        assert "Chromium is not installed" in drawn
