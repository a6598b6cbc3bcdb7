"""The lint, recommend and preview commands through Typer's runner on a real workspace."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tailormail.cli import app
from tailormail.runtime import Runtime
from test_recommend import EVAL_SHOP, shop

runner = CliRunner()

GOOD = (
    "---\nsubject: Hi\n---\n<p>Hi {{ customer.firstName | default: 'there' }}</p>\n"
    '<a href="{{ links.unsubscribe }}">Unsubscribe</a>\n'
)
BAD = "---\nsubject: Hi\n---\n<p>Hi {{ customer.frstName }},</p>\n"


def test_lint_exits_1_on_errors_and_prints_json(workspace: Path) -> None:
    (workspace / "templates" / "good.liquid").write_text(GOOD)
    (workspace / "templates" / "bad.liquid").write_text(BAD)
    result = runner.invoke(app, ["lint", "--json", "--workspace", str(workspace)])
    assert result.exit_code == 1, result.output
    reports = {r["template"]: r for r in json.loads(result.output)}
    assert reports["templates/good.liquid"]["ok"] and reports["templates/good.liquid"]["findings"] == []
    bad = reports["templates/bad.liquid"]["findings"]
    assert {"check": "unknown-variable", "line": 4} in [{"check": f["check"], "line": f["line"]} for f in bad]
    only_good = runner.invoke(app, ["lint", "good", "--workspace", str(workspace)])
    assert only_good.exit_code == 0 and "no problems" in only_good.output
    missing = runner.invoke(app, ["lint", "nope", "--workspace", str(workspace)])
    assert missing.exit_code == 3 and "not found" in missing.output


def test_recommend_evaluate_and_show(runtime: Runtime, workspace: Path) -> None:
    shop(runtime, EVAL_SHOP)
    result = runner.invoke(
        app, ["recommend", "evaluate", "--as-of", "2026-02-10T12:00:00Z", "--json", "--workspace", str(workspace)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert (figures["people"], figures["hit_rate"], figures["baseline_hit_rate"]) == (4, 1.0, 0.0)
    table = runner.invoke(app, ["recommend", "evaluate", "--as-of", "2026-02-10", "--workspace", str(workspace)])
    assert table.exit_code == 0 and "popularity baseline" in table.output and "100.0%" in table.output
    bad_time = runner.invoke(app, ["recommend", "evaluate", "--as-of", "soon", "--workspace", str(workspace)])
    assert bad_time.exit_code == 65 and "not a time" in bad_time.output
    shown = runner.invoke(app, ["recommend", "show", "pair0", "--json", "--workspace", str(workspace)])
    assert shown.exit_code == 0, shown.output
    assert len(json.loads(shown.output)) == 4
    unknown = runner.invoke(app, ["recommend", "show", "nobody", "--workspace", str(workspace)])
    assert unknown.exit_code == 3
