"""The HTML report: every section, charts that open with no network, escaped text."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tailormail.analytics.report import ReportOptions, build_report
from tailormail.api.app import create_app
from tailormail.cli import app
from tailormail.clock import ManualClock, to_ms
from tailormail.runtime import Runtime
from tailormail.store import analytics as analytics_q
from tailormail.store.engine import Store
from tailormail.track import links
from test_metrics import USERS, send_campaign
from test_track import BASE, BROWSER, Slot


def test_report_has_every_section_and_needs_no_network(runtime: Runtime, clock: ManualClock, workspace: Path) -> None:
    runtime.ingestor.ingest_raw([{"type": "identify", "userId": u, "traits": {}} for u in USERS])
    runtime.ingestor.ingest_raw(
        [{"type": "track", "userId": u, "event": "product_view", "timestamp": clock.now().isoformat()} for u in USERS]
    )
    keys = send_campaign(runtime, clock, "<spring>", {"a": "A", "b": "A", "c": "B", "d": "B"})
    clock.advance(timedelta(hours=1))
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        key, pid = keys["c"]
        url = links.click_url(BASE, runtime.settings.secret, key, pid, Slot(1, "hero", 0), "https://s.example/")
        client.get(url.removeprefix(BASE), headers={"User-Agent": BROWSER})
    runtime.ingestor.ingest_raw(
        [
            {
                "type": "track",
                "userId": "c",
                "event": "purchase",
                "timestamp": clock.now().isoformat(),
                "properties": {"revenue": 30},
            }
        ]
    )
    with runtime.store.read() as conn:
        page = build_report(conn, to_ms(clock.now()), ReportOptions(simulated=True))
    for heading in (
        "What was sent and what people did",
        "Experiments",
        "share active in each later week",
        "Paths before a conversion",
        "Simulated data",
    ):
        assert heading in page
    assert "&lt;spring&gt;" in page and "<spring>" not in page  # campaign names are escaped
    assert not re.search(r"<script[^>]+src=", page)  # plotly is inline: the file opens offline
    print(re.findall(r"<h2>.*?</h2>(?:<p>[^<]*</p>)?", page))
    assert page.count("Plotly.newPlot") >= 3
    assert "campaign &lt;spring&gt;" in page and "underpowered" in page


def test_report_command_writes_the_file(workspace: Path) -> None:
    target = workspace / "out" / "report.html"
    result = CliRunner().invoke(app, ["report", "--html", str(target), "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("<!doctype html>") and "Nothing has been sent yet" in target.read_text()


def test_report_parts_read_at_once_on_their_own_connections(runtime: Runtime) -> None:
    runtime.ingestor.ingest_raw([{"type": "track", "userId": u, "event": "product_view"} for u in USERS])
    count = "SELECT count(*) FROM events"
    with runtime.store.read() as conn:
        seen = analytics_q.read_in_parallel(
            conn, [lambda c, i=i: (i, c is conn, c.exec_driver_sql(count).scalar_one()) for i in range(3)]
        )
    assert seen == [(0, True, len(USERS)), (1, False, len(USERS)), (2, False, len(USERS))]


def test_an_in_memory_database_runs_the_parts_on_its_one_connection() -> None:
    store = Store("sqlite://")  # another connection would open another, empty database
    with store.read() as conn:
        assert analytics_q.read_in_parallel(conn, [lambda c: c is conn, lambda c: c is conn]) == [True, True]
    store.close()
