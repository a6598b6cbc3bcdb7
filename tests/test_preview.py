"""Previews: files written, screenshots at 600 and 375 px, variant coverage, contact sheet."""

from __future__ import annotations

import json
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import IN_CI
from tailormail.cli import app
from tailormail.content.preview import (
    PreviewRequest,
    RenderedMail,
    contact_sheet,
    cover_variants,
    parts_of,
    render_mails,
    write_previews,
)
from tailormail.content.screenshot import VIEWPORTS, find_chromium, png_size
from tailormail.runtime import Runtime
from tailormail.store import profiles as profile_q

runner = CliRunner()

HTML = (
    '<!doctype html><html><body style="margin:0"><div style="background:#1a73e8;color:#fff;padding:24px;'
    'font:22px sans-serif">Hi Ada, your picks</div><p style="font:16px sans-serif;padding:0 24px">Trail shoe – '
    "$89.00</p></body></html>"
)


def mime(html: str, text: str) -> bytes:
    message = EmailMessage()
    message["Subject"] = "Hello"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message.as_bytes()


def test_parts_of_reads_both_bodies_back() -> None:
    assert parts_of(mime(HTML, "Hi Ada, your picks")) == (HTML + "\n", "Hi Ada, your picks\n")


COVER_CASES = [
    # (choices, n, expected, why)
    ({1: {"hero": "default"}, 2: {"hero": "default"}, 3: {"hero": "vip"}}, 2, [1, 3], "one per variant"),
    ({1: {"a": "x", "b": "y"}, 2: {"a": "x"}, 3: {"b": "z"}}, 2, [1, 3], "the richest person first"),
    ({1: {"a": "x"}, 2: {"a": "x"}, 3: {"a": "x"}}, 3, [1, 2, 3], "fill up when everything is covered"),
    ({1: {"a": "x", "b": "y"}, 2: {"a": "x", "b": "z"}, 3: {"a": "w", "b": "y"}}, 1, [1], "n limits the picks"),
    ({}, 3, [], "nobody to pick"),
]


@pytest.mark.parametrize(("choices", "n", "expected", "why"), COVER_CASES, ids=[c[3] for c in COVER_CASES])
def test_cover_variants_picks_people_who_show_every_variant(
    choices: dict[int, dict[str, str]], n: int, expected: list[int], why: str
) -> None:
    assert cover_variants(choices, n) == expected, why


def test_previews_write_html_and_text_even_without_screenshots(tmp_path: Path) -> None:
    mails = [
        RenderedMail("user u1", mime(HTML, "Hi Ada"), "Hello", {"hero": "vip"}),
        RenderedMail("user u2", None, error="no valid email address"),
    ]
    previews = write_previews(mails, tmp_path, template="welcome", screenshots=False)
    assert previews[0].html.read_text() == HTML + "\n" and previews[0].text.read_text() == "Hi Ada\n"
    assert previews[0].screenshots == {} and previews[1].error == "no valid email address"
    assert "no valid email address" in previews[1].html.read_text()
    sheet = contact_sheet(previews, tmp_path, template="welcome")
    page = sheet.read_text()
    assert sheet.name == "welcome--contact-sheet.html"
    assert 'src="welcome--user-u1.html"' in page and "hero: vip" in page and "No email: no valid email" in page


def test_screenshots_are_600_and_375_px_wide(tmp_path: Path) -> None:
    if find_chromium() is None:
        if IN_CI:
            pytest.fail("CI must run screenshot tests: .ci/run installs chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    [preview] = write_previews([RenderedMail("user u1", mime(HTML, "Hi"), "Hello")], tmp_path, template="welcome")
    assert set(preview.screenshots) == {v.name for v in VIEWPORTS}
    for viewport in VIEWPORTS:
        png = preview.screenshots[viewport.name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png_size(png)[0] == viewport.width
    page = contact_sheet([preview], tmp_path, template="welcome").read_text()
    assert 'class="mobile" src="welcome--user-u1--mobile.png"' in page


TEMPLATE = (
    "---\nsubject: \"Hi {{ customer.firstName | default: 'there' }}\"\n---\n"
    "{% render 'hero' %}\n"
    "<mj-section><mj-column><mj-text>Hi {{ customer.firstName | default: 'there' }}</mj-text>\n"
    '<mj-text><a href="{{ links.unsubscribe }}">Unsubscribe</a></mj-text></mj-column></mj-section>\n'
)
HERO = (
    "---\nvariants:\n  - name: vip\n    rule: {trait: vip, equals: true}\n    content: |\n"
    "      <mj-section><mj-column><mj-text>VIP hero</mj-text></mj-column></mj-section>\n---\n"
    "<mj-section><mj-column><mj-text>Default hero</mj-text></mj-column></mj-section>\n"
)


def vip_rule(runtime: Runtime):  # type: ignore[no-untyped-def]
    """A stand-in for the segment engine: the rule matches people whose trait vip is true."""

    def evaluate(rule: dict[str, Any], ids: Sequence[int]) -> set[int]:
        with runtime.store.read() as conn:
            traits = profile_q.traits_of(conn, ids)
        return {pid for pid in ids if traits[pid].get(rule["trait"]) == rule["equals"]}

    return evaluate


def preview_shop(runtime: Runtime) -> Path:
    root = runtime.settings.workspace
    (root / "templates" / "welcome.liquid").write_text(TEMPLATE)
    (root / "blocks" / "hero.liquid").write_text(HERO)
    runtime.ingestor.ingest_raw(
        [
            {"type": "identify", "messageId": f"id-{u}", "userId": u, "traits": traits}
            for u, traits in [
                ("u1", {"email": "u1@example.com", "firstName": "Ann"}),
                ("u2", {"email": "u2@example.com"}),
                ("u3", {"email": "u3@example.com", "firstName": "Vi", "vip": True}),
                ("u4", {"firstName": "No email"}),
            ]
        ]
    )
    return root


def test_sample_covers_every_variant_and_writes_a_contact_sheet(runtime: Runtime, tmp_path: Path) -> None:
    preview_shop(runtime)
    with runtime.store.read() as conn:
        mails = render_mails(
            conn, runtime.settings, PreviewRequest("welcome", sample=2), runtime.clock.now(), evaluate=vip_rule(runtime)
        )
    assert [(m.label, m.variants) for m in mails] == [("user u1", {"hero": "default"}), ("user u3", {"hero": "vip"})]
    previews = write_previews(mails, tmp_path, template="welcome", screenshots=False)
    assert "VIP hero" in previews[1].html.read_text() and "Default hero" in previews[0].html.read_text()
    assert "Hi Vi" in previews[1].text.read_text() and previews[1].subject == "Hi Vi"
    page = contact_sheet(previews, tmp_path, template="welcome").read_text()
    assert "hero: vip" in page and "hero: default" in page


def test_preview_command_writes_html_and_text_for_a_profile(runtime: Runtime, tmp_path: Path) -> None:
    root = preview_shop(runtime)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["preview", "welcome", "--profile", "u2", "--out", str(out), "--no-screenshots", "-w", str(root), "--json"]
    )
    assert result.exit_code == 0, result.output
    [shown] = json.loads(result.output)["previews"]
    assert "Hi there" in Path(shown["html"]).read_text() and "Default hero" in Path(shown["text"]).read_text()
    missing = runner.invoke(app, ["preview", "welcome", "--profile", "nobody", "-w", str(root)])
    assert missing.exit_code == 3 and "nobody" in missing.output
    nobody = runner.invoke(app, ["preview", "welcome", "-w", str(root)])
    assert nobody.exit_code == 65 and "--sample" in nobody.output
