"""Template lint: one row per check (a small template that triggers it, the finding and line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailormail.content.lint import CHECKS, TemplateHasErrors, ensure_sendable, lint_workspace
from tailormail.content.lint.checks import text_problems
from tailormail.content.lint.render import Rendered
from tailormail.errors import NotFound

FOOTER = '<p><a href="{{ links.unsubscribe }}">Unsubscribe</a></p>\n'
HB_FOOTER = '<p><a href="{{links.unsubscribe}}">Unsubscribe</a></p>\n'
MJ_HEAD = "<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n"
MJ_TAIL = (
    '<mj-text><a href="{{ links.unsubscribe }}">Unsubscribe</a></mj-text>\n'
    "</mj-column>\n</mj-section>\n</mj-body>\n</mjml>\n"
)

# (check, file name, template text, expected file, expected line)
# fmt: off
CASES = [
    ("syntax", "t.liquid", "<p>Hi</p>\n{% if customer.email %}\n<p>x</p>\n" + FOOTER, "templates/t.liquid", None),
    ("syntax", "t.hbs", "<p>Hi</p>\n\n{{#if user.email}}x{{/each}}\n" + HB_FOOTER, "templates/t.hbs", 3),
    ("unknown-variable", "t.liquid", "<p>Hi</p>\n<p>{{ customer.frstName | default: 'you' }}</p>\n" + FOOTER,
     "templates/t.liquid", 2),
    ("unknown-variable", "t.liquid", "<p>{{ coupon }}</p>\n" + FOOTER, "templates/t.liquid", 1),
    ("unknown-variable", "t.hbs", "<p>Hi</p>\n{{#each user.recommendations}}\n{{this.prise}}\n{{/each}}\n" + HB_FOOTER,
     "templates/t.hbs", 3),
    ("unknown-variable", "t.liquid", "<p>{{ recommendations[0].nme }}</p>\n" + FOOTER, "templates/t.liquid", 1),
    ("unknown-variable", "t.liquid", '<p>{% render "greeting" %}</p>\n' + FOOTER, "blocks/greeting.liquid", 2),
    ("empty-placeholder", "t.liquid", "<p>Dear reader</p>\n<p>{{ customer.lastName }}</p>\n" + FOOTER,
     "templates/t.liquid", 2),
    ("broken-text", "t.hbs", "<p>Hello</p>\n<p>Hi {{user.firstName}}, welcome</p>\n" + HB_FOOTER, "templates/t.hbs", 2),
    ("broken-text", "t.liquid", '---\ndescription: x\nsubject: "Hi {{ customer.firstName }}, news"\n---\n<p>Hi</p>\n'
     + FOOTER, "templates/t.liquid", 3),
    ("leftover-tag", "t.hbs", "<p>Hello</p>\n{% if user.email %}<p>Hi</p>{% endif %}\n" + HB_FOOTER,
     "templates/t.hbs", 2),
    ("missing-amount", "t.liquid", "<p>Hello</p>\n<p>Save $ today</p>\n" + FOOTER, "templates/t.liquid", 2),
    ("render-error", "t.liquid", "<p>Hello</p>\n<p>{{ 10 | divided_by: 0 }}</p>\n" + FOOTER, "templates/t.liquid",
     None),
    ("missing-unsubscribe", "t.liquid", "<p>Hello {{ customer.email }}</p>\n", "templates/t.liquid", None),
    ("invalid-mjml", "t.liquid", MJ_HEAD + "<mj-text>ok</mj-text>\n<mj-bogus>x</mj-bogus>\n" + MJ_TAIL,
     "templates/t.liquid", 6),
    ("invalid-mjml", "t.liquid", "<mjml>\n<mj-body>\n<mj-section>\n<mj-text>no column</mj-text>\n</mj-section>\n"
     "</mj-body>\n</mjml>\n" + FOOTER, "templates/t.liquid", 4),
    ("unknown-segment", "t.liquid", "{% if segment.vip_buyers %}<p>VIP</p>{% endif %}\n" + FOOTER,
     "templates/t.liquid", 1),
    ("missing-alt", "t.liquid", '<p>Hi</p>\n<img src="https://cdn.example/a.png">\n' + FOOTER, "templates/t.liquid", 2),
    ("missing-alt", "t.liquid", MJ_HEAD + '<mj-image src="https://cdn.example/a.png"></mj-image>\n' + MJ_TAIL,
     "templates/t.liquid", 5),
    ("html-too-large", "t.liquid", "<p>" + "x" * 110_000 + "</p>\n" + FOOTER, "templates/t.liquid", None),
    ("insecure-link", "t.liquid", '<p>Hi</p>\n<a href="http://shop.example/">Shop</a>\n' + FOOTER,
     "templates/t.liquid", 2),
    ("unsupported-feature", "t.liquid", '<p>Hi</p>\n<div style="display: flex">x</div>\n' + FOOTER,
     "templates/t.liquid", 2),
    ("unsupported-feature", "t.liquid", "<style>\n.a { color: red }\n.b:hover { color: blue }\n</style>\n" + FOOTER,
     "templates/t.liquid", 3),
]
# fmt: on

BLOCKS = {"greeting.liquid": "<p>Hello\n{{ customer.nickname }}</p>\n"}


def make_workspace(root: Path, files: dict[str, str]) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "blocks").mkdir()
    (root / "segments").mkdir()
    (root / "segments" / "active_buyers.yaml").write_text("name: active_buyers\n")
    (root / "tailormail.toml").write_text("[lint]\ntraits = ['favouriteColour']\n")
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
        if name.startswith("templates/") and not text.startswith("---"):
            # the subject in a sidecar file keeps the template's line numbers as written
            (root / name).with_suffix(".yaml").write_text("subject: Hello\n")
    return root


@pytest.mark.parametrize(
    ("check", "name", "text", "file", "line"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_each_check_reports_its_finding_at_the_right_line(
    tmp_path: Path, check: str, name: str, text: str, file: str, line: int | None
) -> None:
    root = make_workspace(tmp_path, {f"templates/{name}": text} | {f"blocks/{k}": v for k, v in BLOCKS.items()})
    [report] = lint_workspace(root)
    found = [(f.check, f.file, f.line) for f in report.findings]
    assert (check, file, line) in found, report.as_dict()
    others = {f.check for f in report.findings} - {check, "empty-placeholder", "broken-text"}
    assert not others, f"only {check} expected, got {report.as_dict()}"
    assert report.ok == (CHECKS[check][0] == "warning")


def test_every_check_has_a_row() -> None:
    assert {c[0] for c in CASES} == set(CHECKS)


CLEAN = {
    "templates/welcome.hbs": (
        "---\nsubject: Welcome\n---\n"
        "<p>Hi {{#if segment.active_buyers}}again{{else}}there{{/if}}, {{user.email}}</p>\n"
        "{{#each user.recommendations}}\n<p>{{this.name}} - ${{this.price}}</p>\n{{/each}}\n{{> footer}}\n"
    ),
    "templates/california.liquid": (
        "---\nsubject: Spring\n---\n"
        "{% assign season = 'spring' %}\n"
        "{% if customer.location == 'California' %}<p>Sunny {{ season }} deals</p>{% endif %}\n"
        "<p>Hi {{ customer.firstName | default: 'there' }}, {{ customer.favouriteColour | default: 'blue' }}</p>\n"
        '<img src="https://cdn.example/a.png" alt="">\n'
        '{% render "footer" %}\n'
    ),
    "blocks/footer.hbs": HB_FOOTER,
    "blocks/footer.liquid": FOOTER,
}


def test_the_missions_examples_are_clean(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, CLEAN)
    reports = {r.template: r for r in lint_workspace(root)}
    assert set(reports) == {"templates/welcome.hbs", "templates/california.liquid"}
    for report in reports.values():
        assert report.findings == [], report.as_dict()
    assert ensure_sendable(root, "welcome").ok


def test_a_template_with_errors_cannot_be_sent(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, {"templates/bad.liquid": "<p>Hi {{ customer.firstName }},</p>\n"})
    with pytest.raises(TemplateHasErrors) as caught:
        ensure_sendable(root, "bad")
    assert caught.value.source == "templates/bad.liquid" and "lint error" in caught.value.message
    assert {f.check for f in caught.value.report.errors} >= {"empty-placeholder", "missing-unsubscribe"}
    with pytest.raises(NotFound):
        ensure_sendable(root, "nope")


def test_a_sendable_report_is_reused_until_the_template_changes(tmp_path: Path) -> None:
    root = make_workspace(tmp_path, {"templates/ok.liquid": "<p>Hi</p>\n" + FOOTER})
    first = ensure_sendable(root, "ok")
    assert ensure_sendable(root, "ok") is first
    (root / "templates" / "ok.liquid").write_text("<p>Hi {{ customer.firstName }},</p>\n" + FOOTER)
    with pytest.raises(TemplateHasErrors):
        ensure_sendable(root, "ok")


TEXT_CASES = [
    # (visible HTML, broken text?, currency without amount?)
    ("with code <strong>VIP20</strong>.", False, False),
    ("Hi <b></b>, there", True, False),
    ("Hi , welcome", True, False),
    ("Call us ( ) today", True, False),
    ("Free shipping over 50 €", False, False),
    ("Only $ today", False, True),
    ("Price: $</p>", False, True),
    ("Now $<b>5</b>", False, False),
    ("Save £ 10.50 now", False, False),
]


@pytest.mark.parametrize(("html", "broken", "no_amount"), TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_text_checks(html: str, broken: bool, no_amount: bool) -> None:
    rendered = Rendered(html)
    found = {f.check for f in text_problems(rendered, "s", [("t.liquid", html)])}
    assert ("broken-text" in found, "missing-amount" in found) == (broken, no_amount)


def test_the_preset_templates_lint_without_errors(workspace: Path) -> None:
    reports = lint_workspace(workspace)
    assert len(reports) >= 6
    assert [(r.template, [f.message for f in r.errors]) for r in reports if r.errors] == []
