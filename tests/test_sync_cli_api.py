"""`tailormail sync` and `tailormail consume` through the CLI runner; /v1/sync through the API."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from crm_peer import Peer, append_config, serve
from tailormail.api.app import create_app
from tailormail.cli import app
from tailormail.cli.common import console
from tailormail.clock import ManualClock, to_ms
from tailormail.runtime import open_runtime
from tailormail.store import keys
from test_sync_streams import need, track

runner = CliRunner()


def people(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
    return 200, {"people": [{"id": "p1", "n": 1}, {"id": "p2", "n": 2}, {"n": 3}]}, {}


def configure(workspace: Path, base: str) -> None:
    append_config(
        workspace,
        f"""
[sync]
allow_private = true

[[sync.sources]]
name = "people"
url = "{base}/people"
records = "people"
mapping = {{ key = "id", user_id = "id", updated = "n" }}
""",
    )


@pytest.fixture
def crm(workspace: Path) -> Any:
    with serve({"/people": people}) as peer:
        configure(workspace, peer.base_url)
        yield peer


def cli(workspace: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--workspace", str(workspace)])


def test_sync_run_status_and_log(workspace: Path, crm: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)  # a wide terminal: table cells stay on one line
    before = cli(workspace, "sync", "status", "--json")
    assert before.exit_code == 0 and json.loads(before.output)[0]["health"] == "never run"
    ran = cli(workspace, "sync", "run", "people")
    assert ran.exit_code == 0, ran.output
    assert "partial" in ran.output and "written 2" in ran.output and "no 'id'" in ran.output
    status = json.loads(cli(workspace, "sync", "status", "--json").output)
    assert status[0]["health"] == "degraded" and status[0]["lastRun"]["written"] == 2
    table = cli(workspace, "sync", "status")
    assert "people" in table.output and "degraded" in table.output
    log = cli(workspace, "sync", "log", "people", "--errors")
    assert log.exit_code == 0 and "record: {'n': 3}" in log.output
    runs = json.loads(cli(workspace, "sync", "log", "people", "--json").output)
    assert [r["status"] for r in runs] == ["partial"] and runs[0]["watermark"] == "2"


def test_unknown_names_and_bad_config_are_clear_errors(workspace: Path, crm: Peer) -> None:
    missing = cli(workspace, "sync", "log", "nope")
    assert missing.exit_code == 3 and "no sync source or destination named 'nope'" in missing.output
    config = workspace / "tailormail.toml"
    config.write_text(config.read_text() + '\n[[sync.sources]]\nname = "x"\nurl = "ftp://x"\n')
    bad = cli(workspace, "sync", "status")
    assert bad.exit_code == 1 and "source 'x': url must start with http" in bad.output


def test_bad_yaml_names_the_file(workspace: Path) -> None:
    (workspace / "sync").mkdir()
    (workspace / "sync" / "crm.yaml").write_text("sources:\n  - name: a\n    url: https://x\n    bogus: 1\n")
    result = cli(workspace, "sync", "status")
    assert result.exit_code == 1 and "sync/crm.yaml source 'a': unknown key bogus" in result.output


def test_api_status_runs_and_run_now(workspace: Path, clock: ManualClock, crm: Peer) -> None:
    rt = open_runtime(workspace, clock=clock)
    try:
        with rt.store.begin() as conn:
            admin = keys.create_key(conn, "admin", "t", to_ms(clock.now()))[1]
            write = keys.create_key(conn, "write", "t", to_ms(clock.now()))[1]
        with TestClient(create_app(rt)) as client:
            auth = {"Authorization": f"Bearer {admin}"}
            assert client.get("/v1/sync/status", headers={"Authorization": f"Bearer {write}"}).status_code == 403
            ran = client.post("/v1/sync/people/run", headers=auth)
            assert ran.status_code == 200 and ran.json()["written"] == 2
            (status,) = client.get("/v1/sync/status", headers=auth).json()
            assert status["health"] == "degraded" and status["lastRun"]["id"] == ran.json()["id"]
            runs = client.get("/v1/sync/people/runs", headers=auth).json()
            assert [r["id"] for r in runs] == [ran.json()["id"]]
            assert client.get("/v1/sync/nope/runs", headers=auth).status_code == 404
    finally:
        rt.close()


def test_consume_redis_command(workspace: Path) -> None:
    need(6379, "Redis")
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    stream = f"cli-{uuid.uuid4().hex[:8]}"
    try:
        for n in range(3):
            client.xadd(stream, {"data": track(n)})
        client.xadd(stream, {"data": "{bad"})
        result = runner.invoke(
            app,
            [
                "consume",
                "redis",
                "--stream",
                stream,
                "--url",
                "redis://127.0.0.1:6379/15",
                "--until-idle",
                "--workspace",
                str(workspace),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "consumed 4: stored 3, duplicates 0, dead-lettered 1" in result.output
    finally:
        client.delete(stream, f"{stream}:dead")
        client.close()


def test_the_readme_example_config_is_valid(workspace: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = readme.split("## Sync:", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    append_config(workspace, example)
    result = cli(workspace, "sync", "status", "--json")
    assert result.exit_code == 0, result.output
    assert [s["name"] for s in json.loads(result.output)] == ["crm_customers", "orders_export", "crm"]
