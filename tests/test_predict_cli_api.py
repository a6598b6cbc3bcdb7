"""`tailormail predict ...` through Typer's runner and the predict API in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tailormail.api.app import create_app
from tailormail.cli import app
from tailormail.clock import to_ms
from tailormail.predict import service
from tailormail.runtime import Runtime
from test_api_ingest import basic, make_key
from test_predict_models import ingest, shop_messages

runner = CliRunner()
DATA = Path(__file__).parent / "data"


@pytest.fixture
def trained(runtime: Runtime) -> Runtime:
    ingest(runtime, shop_messages(to_ms(runtime.clock.now()), users=200))
    return runtime


def cli(workspace: Path, *args: str) -> str:
    result = runner.invoke(app, ["predict", *args, "--workspace", str(workspace)])
    assert result.exit_code == 0, result.output
    return result.output


def test_train_score_report_through_the_cli(trained: Runtime, workspace: Path, tmp_path: Path) -> None:
    as_of = trained.clock.now().isoformat()
    out = json.loads(cli(workspace, "train", "purchase_30d", "--as-of", as_of, "--json"))
    assert [(r["model"], r["version"], r["status"]) for r in out] == [("purchase_30d", 1, "promoted")]
    assert "churn_90d" in cli(workspace, "train", "--as-of", as_of)  # the table of all three
    assert json.loads(cli(workspace, "score", "--as-of", as_of, "--json"))["purchase_30d"] > 150
    table = " ".join(cli(workspace, "report", "purchase_30d").split())  # undo terminal wrapping
    assert "ROC AUC" in table and "decile" in table and "the odds of buying in the next 30 days by" in table
    page = tmp_path / "report.html"
    cli(workspace, "report", "--html", str(page))
    text = page.read_text(encoding="utf-8")
    assert "<script src=" not in text and "Plotly" in text  # plotly inline: opens offline
    for title in ("ROC", "Calibration (deciles)", "Lift by decile", "churn_90d v1", "high_value_90d v1"):
        assert title in text


def test_cli_errors_are_clean(workspace: Path) -> None:
    result = runner.invoke(app, ["predict", "train", "nope", "--workspace", str(workspace)])
    assert result.exit_code == 3 and "known models" in result.output
    result = runner.invoke(app, ["predict", "report", "--workspace", str(workspace), "purchase_30d"])
    assert result.exit_code == 3 and "has not been trained" in result.output


def test_benchmark_cdnow_table_and_json() -> None:
    result = runner.invoke(app, ["predict", "benchmark-cdnow", str(DATA / "cdnow_sample.txt"), "--json"])
    assert result.exit_code == 0, result.output
    (data,) = json.loads(result.output)
    assert data["customers"] == 2357 and data["bgnbd"]["r"] == pytest.approx(0.243, rel=0.01)
    assert [r["model"] for r in data["results"]] == ["BG/NBD", "logistic regression"]
    table = runner.invoke(app, ["predict", "benchmark-cdnow", str(DATA / "cdnow_sample.txt")]).output
    assert "ROC AUC" in table and "alpha=4.41" in table


@pytest.fixture
def client(trained: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(trained)) as c:
        yield c


def test_api_reads_scores_and_reports(trained: Runtime, client: TestClient) -> None:
    admin, write = basic(make_key(trained, "admin")), basic(make_key(trained, "write"))
    service.train(trained.store, trained.settings, trained.clock.now(), "purchase_30d")
    service.score(trained.store, trained.settings, trained.clock.now())
    scores = client.get("/v1/predict/profiles/u1", headers=admin)
    assert scores.status_code == 200 and 0 <= scores.json()["predicted"]["purchase_30d"] <= 1
    reports = client.get("/v1/predict/reports", headers=admin).json()
    assert [r["model"] for r in reports] == ["purchase_30d"] and "params" not in reports[0]
    one = client.get("/v1/predict/reports/purchase_30d", headers=admin).json()
    assert one["metrics"]["roc_auc"] > 0.6 and one["in_use_version"] == 1
    assert client.get("/v1/predict/reports", headers=write).status_code == 403
    assert client.get("/v1/predict/profiles/nobody", headers=admin).status_code == 404
    assert client.get("/v1/predict/reports/churn_90d", headers=admin).status_code == 404
