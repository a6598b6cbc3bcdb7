"""Scheduled pulls against a real CRM on loopback: pagination, retries, bad records, idempotency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm_peer import Peer, append_config, serve
from tailormail.runtime import Runtime, open_runtime
from tailormail.store import events as event_q
from tailormail.store import profiles as profile_q
from tailormail.sync import tasks
from tailormail.sync.pulls import PullOptions

TOKEN = "s3cret-token"


def customers(n: int = 25) -> list[dict[str, Any]]:
    rows = [
        {
            "id": f"c{i}",
            "email": f"c{i}@example.com",
            "name": f"Customer {i}",
            "subscription": {"plan": "pro" if i % 2 else "free"},
            "updated_at": f"2026-02-{1 + i % 28:02d}T10:00:00Z",
        }
        for i in range(n)
    ]
    rows[7] = {"email": "nokey@example.com", "updated_at": "2026-02-03T00:00:00Z"}  # malformed: no id
    return rows


ORDERS = [
    {
        "order_id": f"o{i}",
        "customer_id": f"c{i % 10}",
        "status": "test" if i == 3 else "paid",
        "total": 10.0 + i,
        "items": [1, 2],
        "created_at": f"2026-02-10T0{i % 10}:00:00Z",
    }
    for i in range(12)
]


def crm_routes(fail_orders_page: int = 2, failures: int = 2) -> dict[str, Any]:
    state = {"failed": 0}

    def customer_page(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
        rows = customers()
        since = query.get("updated_since")
        if since:
            rows = [r for r in rows if r["updated_at"] > since]
        start = int(query.get("cursor", "0"))
        page = rows[start : start + 10]
        following = str(start + 10) if start + 10 < len(rows) else None
        return 200, {"data": {"customers": page}, "meta": {"next_cursor": following}}, {}

    def order_page(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
        page, size = int(query["page"]), int(query["per_page"])
        if page == fail_orders_page and state["failed"] < failures:
            state["failed"] += 1
            return 500, {"error": "database is busy"}, {}
        return 200, {"orders": ORDERS[(page - 1) * size : page * size]}, {}

    def guarded(route: Any) -> Any:
        def check(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
            auth = peer.requests[-1][2].get("Authorization")
            return route(query, peer) if auth == f"Bearer {TOKEN}" else (401, {"error": "bad token"}, {})

        return check

    return {"/customers": guarded(customer_page), "/orders": guarded(order_page)}


def write_config(workspace: Path, base: str) -> None:
    append_config(
        workspace,
        f"""
[sync]
allow_private = true

[[sync.sources]]
name = "crm_customers"
url = "{base}/customers"
auth_env = "CRM_TOKEN"
auth_prefix = "Bearer "
records = "data.customers"
watermark_param = "updated_since"
pagination = {{ type = "cursor", param = "cursor", next = "meta.next_cursor" }}
[sync.sources.mapping]
type = "identify"
key = "id"
user_id = "id"
updated = "updated_at"
traits = {{ email = "email", plan = "subscription.plan", name = "name" }}

[[sync.sources]]
name = "crm_orders"
url = "{base}/orders"
auth_env = "CRM_TOKEN"
auth_prefix = "Bearer "
records = "orders[?status != 'test']"
schedule = "30 4 * * *"
pagination = {{ type = "page", param = "page", size_param = "per_page", size = 5 }}
[sync.sources.mapping]
type = "track"
event = "purchase"
key = "order_id"
user_id = "customer_id"
timestamp = "created_at"
properties = {{ total = "total", items = "length(items)" }}
""",
    )


@pytest.fixture
def crm(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CRM_TOKEN", TOKEN)
    with serve(crm_routes()) as peer:
        write_config(workspace, peer.base_url)
        yield peer


@pytest.fixture
def rt(workspace: Path, clock: Any, crm: Peer) -> Any:
    runtime = open_runtime(workspace, clock=clock)
    yield runtime
    runtime.close()


def purchases(rt: Runtime) -> int:
    with rt.store.read() as conn:
        return sum(n for kind, event, n, _ in event_q.event_counts(conn) if event == "purchase")


def test_every_good_record_arrives_once_and_the_malformed_one_is_reported(rt: Runtime, crm: Peer) -> None:
    waits: list[float] = []
    run = tasks.run_now(rt, "crm_customers", PullOptions(sleep=waits.append))
    assert (run["status"], run["read"], run["written"], run["failed"]) == ("partial", 25, 24, 1)
    (bad,) = [e for e in run["errors"] if e["kind"] == "record"]
    assert "no 'id'" in bad["message"] and bad["record"]["email"] == "nokey@example.com"
    assert run["watermark"] == "2026-02-25T10:00:00Z"
    with rt.store.read() as conn:
        assert profile_q.count_profiles(conn) == 24
        profile = profile_q.get_profile(conn, user_id="c3")
    assert profile is not None and profile["traits"] == {"email": "c3@example.com", "plan": "pro", "name": "Customer 3"}
    assert [q.get("cursor") for q in crm.seen("/customers")] == [None, "10", "20"]
    assert waits == []


def test_a_failing_page_is_retried_with_backoff_and_the_log_shows_the_retries(rt: Runtime, crm: Peer) -> None:
    waits: list[float] = []
    run = tasks.run_now(rt, "crm_orders", PullOptions(sleep=waits.append))
    assert (run["status"], run["written"], run["retries"]) == ("ok", 11, 2)
    assert purchases(rt) == 11  # 12 orders, one filtered by the JMESPath selector; none twice
    retries = [e["message"] for e in run["errors"] if e["kind"] == "retry"]
    assert len(retries) == 2 and all("page 2: HTTP 500" in m for m in retries)
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0  # exponential, jittered
    assert [q["page"] for q in crm.seen("/orders")] == ["1", "2", "2", "2", "3", "4"]
    (logged,) = tasks.history(rt, "crm_orders")
    assert logged["retries"] == 2 and logged["status"] == "ok"


def test_pulling_again_changes_nothing_and_sends_the_watermark(rt: Runtime, crm: Peer) -> None:
    first = tasks.run_now(rt, "crm_customers", PullOptions(sleep=lambda _: None))
    with rt.store.read() as conn:
        before = event_q.event_counts(conn)
    second = tasks.run_now(rt, "crm_customers", PullOptions(sleep=lambda _: None))
    assert crm.seen("/customers")[-1]["updated_since"] == first["watermark"]
    assert second["written"] == 0 and second["watermark"] == first["watermark"]
    # The same records without the watermark: all recognised as already stored.
    tasks.run_now(rt, "crm_orders", PullOptions(sleep=lambda _: None))
    again = tasks.run_now(rt, "crm_orders", PullOptions(sleep=lambda _: None))
    assert (again["written"], again["skipped"]) == (0, 11)
    with rt.store.read() as conn:
        after = event_q.event_counts(conn)
    assert [c for c in after if c[1] != "purchase"] == before


def test_a_wrong_token_fails_the_run_without_moving_the_watermark(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TOKEN", "wrong")
    run = tasks.run_now(rt, "crm_customers", PullOptions(sleep=lambda _: None))
    assert run["status"] == "failed" and run["watermark"] is None
    assert "HTTP 401" in run["errors"][-1]["message"]


def test_loopback_is_refused_unless_allowed(workspace: Path, clock: Any, crm: Peer) -> None:
    config = workspace / "tailormail.toml"
    config.write_text(config.read_text().replace("allow_private = true", "allow_private = false"))
    runtime = open_runtime(workspace, clock=clock)
    try:
        run = tasks.run_now(runtime, "crm_customers", PullOptions(sleep=lambda _: None))
    finally:
        runtime.close()
    assert run["status"] == "failed" and "non-public address" in run["errors"][-1]["message"]
    assert crm.seen("/customers") == []


def test_next_link_pagination(workspace: Path, clock: Any) -> None:
    pages = {"1": ([{"id": "a", "v": 1}, {"id": "b", "v": 1}], "/items?p=2"), "2": ([{"id": "c", "v": 1}], None)}

    def items(query: dict[str, str], peer: Peer) -> tuple[int, Any, dict[str, str]]:
        rows, following = pages[query.get("p", "1")]
        headers = {"Link": f'<{peer.base_url}{following}>; rel="next"'} if following else {}
        return 200, rows, headers

    with serve({"/items": items}) as peer:
        (workspace / "sync").mkdir()
        (workspace / "sync" / "items.yaml").write_text(
            json.dumps(
                {
                    "sources": [
                        {
                            "name": "items",
                            "url": f"{peer.base_url}/items",
                            "allow_private": True,
                            "pagination": {"type": "link"},
                            "mapping": {"key": "id", "user_id": "id", "updated": "v"},
                        }
                    ]
                }
            )
        )
        runtime = open_runtime(workspace, clock=clock)
        try:
            run = tasks.run_now(runtime, "items")
        finally:
            runtime.close()
    assert (run["status"], run["written"]) == ("ok", 3)
    assert [q.get("p") for q in peer.seen("/items")] == [None, "2"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_file_sources(workspace: Path, clock: Any, fmt: str) -> None:
    rows = [
        {"id": "u1", "email": "u1@example.com", "updated": "2026-01-01"},
        {"id": "u2", "email": "u2@example.com", "updated": "2026-01-02"},
    ]
    folder = workspace / "exports"
    folder.mkdir()
    path = folder / f"people.{fmt}"
    if fmt == "csv":
        path.write_text(
            "id,email,updated\n"
            + "".join(f"{r['id']},{r['email']},{r['updated']}\n" for r in rows)
            + ",missing@example.com,2026-01-03\n"
        )
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    append_config(
        workspace,
        f"""
[[sync.sources]]
name = "people"
kind = "file"
path = "exports/*.{fmt}"
mapping = {{ key = "id", user_id = "id", updated = "updated" }}
""",
    )
    runtime = open_runtime(workspace, clock=clock)
    try:
        first = tasks.run_now(runtime, "people")
        again = tasks.run_now(runtime, "people")
        with runtime.store.read() as conn:
            profile = profile_q.get_profile(conn, user_id="u2")
    finally:
        runtime.close()
    assert first["written"] == 2 and again["written"] == 0
    assert profile is not None and profile["traits"] == {"email": "u2@example.com", "updated": "2026-01-02"}
    if fmt != "parquet":
        (bad,) = [e for e in first["errors"] if e["kind"] == "record"]
        assert bad["where"] == f"people.{fmt}:{4 if fmt == 'csv' else 3}"
