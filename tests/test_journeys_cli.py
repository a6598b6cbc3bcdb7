"""`tailormail journeys` commands on a real workspace."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tailormail.cli import app
from tailormail.runtime import open_runtime

runner = CliRunner()


def test_list_show_pause_resume(workspace: Path) -> None:
    listed = runner.invoke(app, ["journeys", "list", "--json", "-w", str(workspace)])
    assert listed.exit_code == 0, listed.output
    names = {row["journey"]: row for row in json.loads(listed.output)}
    assert names["cart_abandonment"]["entry"] == "performs add_to_cart" and names["birthday"]["state"] == "live"
    shown = runner.invoke(app, ["journeys", "show", "cart_abandonment", "-w", str(workspace)])
    assert shown.exit_code == 0 and "wait_1h: wait 1 hour" in shown.output and "no" in shown.output
    assert runner.invoke(app, ["journeys", "pause", "birthday", "-w", str(workspace)]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["journeys", "list", "--json", "-w", str(workspace)]).output)
    assert {r["journey"]: r["state"] for r in listed}["birthday"] == "paused"
    assert runner.invoke(app, ["journeys", "resume", "birthday", "-w", str(workspace)]).exit_code == 0
    missing = runner.invoke(app, ["journeys", "show", "cart_abandonmnt", "-w", str(workspace)])
    assert missing.exit_code == 3 and "did you mean 'cart_abandonment'" in missing.output


def test_dry_run_from_a_file(workspace: Path, tmp_path: Path) -> None:
    rt = open_runtime(workspace)
    rt.ingestor.ingest_raw([{"type": "identify", "userId": "u1", "traits": {"timezone": "UTC"}}])
    rt.close()
    events = tmp_path / "cart.jsonl"
    events.write_text('{"event": "add_to_cart", "timestamp": "2026-03-02T09:00:00Z"}\n')
    result = runner.invoke(
        app, ["journeys", "test", "cart_abandonment", "--profile", "u1", "--events", str(events), "-w", str(workspace)]
    )
    assert result.exit_code == 0, result.output
    assert "2026-03-02T10:00+00:00: cart_reminder" in result.output and "cart_recommendations" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event": "add_to_cart"}\nnot json\n')
    error = runner.invoke(
        app, ["journeys", "test", "cart_abandonment", "--profile", "u1", "--events", str(bad), "-w", str(workspace)]
    )
    assert error.exit_code == 65 and "line 2" in error.output
