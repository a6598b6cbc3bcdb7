"""`tailormail demo` end to end on a small shop: its numbers must be the store's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tailormail.cli import app
from tailormail.clock import ManualClock
from tailormail.demo import DemoOptions, DemoSummary, Section, run_demo
from tailormail.errors import ConfigError
from tailormail.runtime import open_runtime
from tailormail.store.schema import events, profiles


@pytest.fixture
def demo_root(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TAILORMAIL_DATABASE_URL", database_url)
    return tmp_path / "demo-workspace"


def section(summary: DemoSummary, title: str) -> Section:
    return next(s for s in summary.sections if s.title == title)


def table(summary: DemoSummary, section_title: str, title: str) -> dict[str, list]:
    found = next(t for t in section(summary, section_title).tables if t.title == title)
    return {str(row[0]) + ("/" + str(row[1]) if title == "Events by type" else ""): row for row in found.rows}


def test_demo_summarises_exactly_what_the_store_holds(demo_root: Path, clock: ManualClock) -> None:
    summary = run_demo(DemoOptions(demo_root, customers=300, days=30, seed=11, live=False), clock=clock)
    rt = open_runtime(demo_root)
    with rt.store.read() as conn:
        n_profiles = conn.execute(select(func.count()).select_from(profiles)).scalar_one()
        purchase = events.c.event == "purchase"
        orders, revenue = conn.execute(select(func.count(), func.sum(events.c.revenue)).where(purchase)).one()
        by_event = dict(conn.execute(select(events.c.event, func.count()).group_by(events.c.event)).all())
        newest = conn.execute(select(func.max(events.c.ts)).where(events.c.event.not_like("segment_%"))).scalar_one()
    rt.close()
    overview = table(summary, "Shop summary", "Overview")
    assert overview["profiles"][1] == n_profiles == 300
    assert overview["orders"][1] == orders > 0
    assert overview["revenue"][1] == pytest.approx(revenue, abs=0.01)
    counted = table(summary, "Shop summary", "Events by type")
    assert counted["track/purchase"][2] == by_event["purchase"] and counted["identify/"][2] == by_event[None]
    categories = table(summary, "Shop summary", "Categories by revenue")
    assert sum(row[2] for row in categories.values()) == pytest.approx(revenue, abs=0.05)
    assert newest < clock.now().timestamp() * 1000  # the 30 days end now, nothing in the future
    presets = table(summary, "Segments", "Preset segments")
    assert set(presets) == {"active_buyers", "cart_abandoners", "engaged_browsers", "lapsed_customers",
                            "new_subscribers", "high_value", "at_risk"}  # fmt: skip
    assert presets["active_buyers"][1] > 0
    assert any(note.startswith("Why ") for note in section(summary, "Segments").notes)
    per_day = next(c for c in section(summary, "Shop summary").charts if c.title == "Revenue per day")
    assert len(per_day.x) == len(set(per_day.x)) <= 31 and sum(per_day.y) == pytest.approx(revenue, abs=0.05)
    html = summary.report.read_text(encoding="utf-8") if summary.report else ""
    assert "Revenue per day" in html and "Plotly.newPlot" in html and "<script src=" not in html


def test_a_second_demo_run_starts_from_an_empty_database(demo_root: Path, clock: ManualClock) -> None:
    options = DemoOptions(demo_root, customers=80, days=14, seed=2, live=False)
    first = run_demo(options, clock=clock)
    second = run_demo(options, clock=clock)
    assert table(second, "Shop summary", "Overview") == table(first, "Shop summary", "Overview")
    assert "reset the database" in section(second, "Workspace").notes[0]


def test_the_demo_refuses_a_workspace_it_did_not_make(workspace: Path, clock: ManualClock) -> None:
    with pytest.raises(ConfigError) as caught:
        run_demo(DemoOptions(workspace, customers=10, days=7), clock=clock)
    assert "did not create" in caught.value.message and caught.value.hint


def test_demo_command_prints_tables_and_json(demo_root: Path) -> None:
    runner = CliRunner()
    args = ["demo", "--workspace", str(demo_root), "--customers", "60", "--days", "10", "--no-live"]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "Events by type" in shown.output and "summary.html" in shown.output
    data = json.loads(runner.invoke(app, [*args, "--json"]).output)
    titles = [s["title"] for s in data["sections"]]
    assert titles[:3] == ["Workspace", "Simulated shop", "Shop summary"]


def test_the_live_demo_sends_tracks_and_reports(demo_root: Path, clock: ManualClock) -> None:
    summary = run_demo(DemoOptions(demo_root, customers=300, days=30, seed=11), clock=clock)
    sent = {(row[0], row[1]): row[3] for row in section(summary, "Journeys").tables[0].rows if row[2] == "sent"}
    assert sent[("cart_abandonment", "reminder")] > 0
    maildir = sorted((demo_root / "outbox" / "new").iterdir())
    assert len(maildir) == sum(sent.values())  # every email the summary counts is a file a person can open
    hits = {row[0]: row[1] for row in section(summary, "Tracking (simulated recipients)").tables[0].rows}
    rt = open_runtime(demo_root)
    with rt.store.read() as conn:
        stored = dict(conn.execute(select(events.c.event, func.count()).group_by(events.c.event)).all())
    rt.close()
    assert hits["emails"] == len(maildir) and 0 < hits["clicks"] <= hits["opens"]
    assert stored.get("email_opened", 0) >= hits["opens"] and stored.get("email_clicked", 0) == hits["clicks"]
    models = table(summary, "Predictions", "Models (time-split backtest)")
    assert set(models) == {"purchase_30d", "churn_90d", "high_value_90d"}
    report = (demo_root / "reports" / "report.html").read_text(encoding="utf-8")
    assert "Simulated data" in report and "<script src=" not in report
    previews = table(summary, "Content", "One campaign per preset segment")
    assert previews["cart_abandoners"][2] == 3 and previews["cart_abandoners"][3] == 0
