"""Importing and exporting files on a real database: CDNOW, bad rows, formats, round trips."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import DATA, T0
from tailormail.cli import app
from tailormail.clock import to_ms
from tailormail.ingest.export import export_events, export_profiles
from tailormail.ingest.importer import ImportOptions, ImportProgress, import_file
from tailormail.ingest.profiles import event_json
from tailormail.runtime import Runtime, open_runtime
from tailormail.store import events as event_q
from tailormail.store import profiles as profile_q
from tailormail.store.schema import events, products, profiles

CDNOW_OPTIONS = ImportOptions(
    maps={
        "customer_id": "userId",
        "date": "timestamp",
        "number_of_cds": "properties.quantity",
        "dollar_value": "properties.revenue",
    },
    date_format="%Y%m%d",
    event="purchase",
)


def now(rt: Runtime) -> int:
    return to_ms(rt.clock.now())


def count(rt: Runtime, table: Any) -> int:
    with rt.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def cdnow_truth(path: Path) -> tuple[int, int, Decimal]:
    """Rows, customers and total dollars straight from the file."""
    rows = [line.split() for line in path.read_text().splitlines()[1:] if line.strip()]
    return len(rows), len({r[0] for r in rows}), sum((Decimal(r[3]) for r in rows), Decimal(0))


def test_cdnow_imports_as_purchases_with_revenue_and_a_second_import_adds_nothing(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = DATA / "cdnow_master.txt"
    rows, customers, dollars = cdnow_truth(path)
    assert (rows, customers) == (69_659, 23_570)
    seen: list[ImportProgress] = []
    report = import_file(
        runtime.store, path, "events", now_ms=now(runtime), options=CDNOW_OPTIONS, on_progress=seen.append
    )
    assert (report.format, report.rows, report.imported, report.errors) == ("whitespace", rows, rows, 0)
    assert seen[-1].position == seen[-1].total == path.stat().st_size
    assert len(seen) > rows // 2_000 and [p.rows for p in seen] == sorted(p.rows for p in seen)
    with runtime.store.read() as conn:
        total, n, names = conn.execute(
            select(func.sum(events.c.revenue), func.count(), func.count(func.distinct(events.c.event)))
        ).one()
        first = conn.execute(select(events).order_by(events.c.ts, events.c.id).limit(1)).mappings().one()
        profile = profile_q.get_profile(conn, user_id="00001")
    assert n == rows and names == 1 and first["event"] == "purchase"
    assert round(Decimal(total), 2) == dollars
    assert count(runtime, profiles) == customers
    assert profile is not None and first["properties"] == {"quantity": 1, "revenue": 11.77}
    # A historical import dates the person by their purchases, not by the day of the import.
    assert (profile["first_seen"], profile["last_seen"]) == (to_ms(_day(1997, 1, 1)), to_ms(_day(1997, 1, 1)))
    again = import_file(runtime.store, path, "events", now_ms=now(runtime) + 1000, options=CDNOW_OPTIONS)
    assert (again.imported, again.duplicates) == (0, rows)
    assert count(runtime, events) == rows


def _day(y: int, m: int, d: int) -> Any:
    return T0.replace(year=y, month=m, day=d, hour=0, minute=0)


def test_identical_rows_in_one_file_are_both_kept(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("user_id,event,revenue\nu1,purchase,12.00\nu1,purchase,12.00\nu2,purchase,12.00\n")
    report = import_file(runtime.store, path, "events", now_ms=now(runtime))
    assert report.imported == 3
    assert import_file(runtime.store, path, "events", now_ms=now(runtime)).imported == 0
    path.write_text(path.read_text() + "u1,purchase,12.00\n")  # a third identical order appended later
    assert import_file(runtime.store, path, "events", now_ms=now(runtime)).imported == 1


def test_bad_rows_go_to_the_report_and_good_rows_are_imported(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,event,timestamp,amount\n"
        "u1,view,20260301,1\n"
        "u2,view,2026-13-45,2\n"  # impossible date
        ",view,20260301,3\n"  # nobody
        "u4,view,20260301\n"  # a value short
        "u5,,20260301,5\n"  # no event name
        "u6,view,20260302,6\n"
    )
    errors = tmp_path / "bad.csv"
    options = ImportOptions(date_format="%Y%m%d", errors_path=errors)
    report = import_file(runtime.store, path, "events", now_ms=now(runtime), options=options)
    assert (report.rows, report.imported, report.errors) == (6, 2, 4)
    with errors.open() as f:
        bad = list(csv.DictReader(f))
    assert [(b["line"], b["field"]) for b in bad] == [("3", "timestamp"), ("4", "userId"), ("5", ""), ("6", "event")]
    assert "does not match the date format %Y%m%d" in bad[0]["reason"]
    assert "header names 4 columns" in bad[2]["reason"]
    assert report.error_fields["timestamp"][:2] == [1, 3]
    assert count(runtime, events) == 2


def test_error_report_defaults_to_a_file_next_to_the_input(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"userId": "u1", "event": "x"}\nnot json\n[1]\n')
    report = import_file(runtime.store, path, "events", now_ms=now(runtime))
    assert report.error_file == tmp_path / "e.jsonl.errors.csv"
    lines = report.error_file.read_text().splitlines()
    assert lines[1].startswith("2,,not valid JSON") and lines[2].startswith("3,,each line must be a JSON object")
    assert report.imported == 1


def test_parquet_and_jsonl_events_with_mapped_columns(runtime: Runtime, tmp_path: Path) -> None:
    table = pa.table(
        {
            "customer": ["a", "b"],
            "kind": ["signup", "login"],
            "at": pa.array([to_ms(T0) - 1000, to_ms(T0)], pa.timestamp("ms", tz="UTC")),
            "plan": ["pro", None],
        }
    )
    pq.write_table(table, tmp_path / "e.parquet")
    (tmp_path / "e.jsonl").write_text('{"customer": "c", "kind": "signup", "at": "2026-03-01T00:00:00Z"}\n')
    options = ImportOptions(maps={"customer": "userId", "kind": "event", "at": "timestamp"})
    for name in ("e.parquet", "e.jsonl"):
        import_file(runtime.store, tmp_path / name, "events", now_ms=now(runtime), options=options)
    with runtime.store.read() as conn:
        rows = {r["user_id"]: r for r in event_q.iter_events(conn)}
    assert {u: (r["event"], r["ts"]) for u, r in rows.items()} == {
        "a": ("signup", to_ms(T0) - 1000),
        "b": ("login", to_ms(T0)),
        "c": ("signup", to_ms(T0.replace(day=1, hour=0))),
    }
    assert rows["a"]["properties"] == {"plan": "pro"} and rows["b"]["properties"] == {}


def test_profiles_import_sets_traits_and_adds_nothing_twice(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("external_id,email,first_name,age\nu1,ada@x.io,Ada,36\nu2,bob@x.io,Bob,\n")
    report = import_file(runtime.store, path, "profiles", now_ms=now(runtime))
    assert (report.imported, report.errors) == (2, 0)
    with runtime.store.read() as conn:
        ada = profile_q.get_profile(conn, user_id="u1")
        bob = profile_q.get_profile(conn, user_id="u2")
    assert ada and ada["traits"] == {"email": "ada@x.io", "first_name": "Ada", "age": 36}
    assert bob and bob["traits"] == {"email": "bob@x.io", "first_name": "Bob"}
    assert import_file(runtime.store, path, "profiles", now_ms=now(runtime)).imported == 0
    path.write_text("external_id,email\nu1,ada@new.io\n")
    assert import_file(runtime.store, path, "profiles", now_ms=now(runtime)).imported == 1
    with runtime.store.read() as conn:
        ada = profile_q.get_profile(conn, user_id="u1")
    assert ada and ada["traits"]["email"] == "ada@new.io" and ada["traits"]["age"] == 36


def test_products_import_upserts_the_catalog(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("sku,title,category,price,color\np1,Red shoes,shoes,49.90,red\np2,Hat,hats,,\n,Nameless,x,1,\n")
    report = import_file(runtime.store, path, "products", now_ms=now(runtime))
    assert (report.imported, report.errors) == (2, 1)
    again = import_file(runtime.store, path, "products", now_ms=now(runtime) + 5)
    assert (again.imported, again.duplicates) == (0, 2)
    path.write_text("sku,title,price\np1,Red shoes,39.90\n")
    assert import_file(runtime.store, path, "products", now_ms=now(runtime) + 9).imported == 1
    with runtime.store.read() as conn:
        rows = {r["product_id"]: r for r in conn.execute(select(products)).mappings()}
    assert rows["p1"]["price"] == 39.9 and rows["p1"]["updated_at"] == now(runtime) + 9
    assert rows["p2"]["price"] is None and rows["p2"]["updated_at"] == now(runtime)


MIXED = [
    {"type": "identify", "messageId": "i1", "userId": "u1", "anonymousId": "a1", "traits": {"plan": "pro"}},
    {
        "type": "track",
        "messageId": "t1",
        "userId": "u1",
        "event": "purchase",
        "properties": {"revenue": 9.5},
        "context": {"ip": "10.0.0.1"},
        "timestamp": "2026-03-01T10:00:00Z",
    },
    {"type": "page", "messageId": "p1", "anonymousId": "a2", "name": "Home", "properties": {"path": "/"}},
    {"type": "group", "messageId": "g1", "userId": "u1", "groupId": "acme", "traits": {"size": 5}},
    {"type": "track", "messageId": "t2", "userId": "u2", "event": "signup"},
    {"type": "alias", "messageId": "al", "previousId": "u2", "userId": "u3"},
]


def snapshot(rt: Runtime) -> list[dict[str, Any]]:
    with rt.store.read() as conn:
        rows = [event_json(r) for r in event_q.iter_events(conn)]
    return sorted(({k: v for k, v in r.items() if k != "receivedAt"} for r in rows), key=lambda r: r["messageId"])


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_then_import_into_a_fresh_workspace_gives_the_same_events(
    runtime: Runtime, tmp_path: Path, database_url: str, fmt: str
) -> None:
    runtime.ingestor.ingest_raw(MIXED)
    out = tmp_path / f"events.{fmt}"
    assert export_events(runtime.store, out, fmt).rows == len(MIXED)
    if fmt == "jsonl":
        first = json.loads(out.read_text().splitlines()[1])
        assert first == {**event_json({**_row(runtime, "t1"), "user_id": "u1"})}
    other = open_runtime(tmp_path / "ws", clock=runtime.clock, database_url=_second_db(database_url, tmp_path))
    try:
        report = import_file(other.store, out, "events", now_ms=now(runtime) + 60_000)
        assert (report.imported, report.errors) == (len(MIXED), 0)
        assert snapshot(other) == snapshot(runtime)
    finally:
        other.close()


def _row(rt: Runtime, message_id: str) -> dict[str, Any]:
    with rt.store.read() as conn:
        return dict(conn.execute(select(events).where(events.c.message_id == message_id)).mappings().one())


def _second_db(database_url: str, tmp_path: Path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'second.db'}"
    from conftest import PG_URL, fresh_pg_schema

    return fresh_pg_schema(PG_URL)[0]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_profiles(runtime: Runtime, tmp_path: Path, fmt: str) -> None:
    runtime.ingestor.ingest_raw(MIXED[:3])
    out = tmp_path / f"profiles.{fmt}"
    assert export_profiles(runtime.store, out, fmt).rows == 2
    rows = (
        [json.loads(line) for line in out.read_text().splitlines()]
        if fmt == "jsonl"
        else pq.read_table(out).to_pylist()
    )
    by_user = {r["userId"]: r for r in rows}
    traits = by_user["u1"]["traits"]
    assert (json.loads(traits) if fmt == "parquet" else traits) == {"plan": "pro"}
    assert by_user["u1"]["anonymousIds"] == ["a1"] and by_user[None]["anonymousIds"] == ["a2"]


runner = CliRunner()


def test_cli_import_and_export(workspace: Path, tmp_path: Path) -> None:
    sample = DATA / "cdnow_sample.txt"  # no header line: master id, sample id, date, CDs, dollars
    args = ["import", "events", str(sample), "-w", str(workspace), "--event", "purchase", "--date-format", "%Y%m%d"]
    args += ["--columns", "customer_id,sample_id,date,number_of_cds,dollar_value", "--errors", str(tmp_path / "e.csv")]
    maps = ["--map", "customer_id=userId", "--map", "date=timestamp", "--map", "dollar_value=properties.revenue"]
    result = runner.invoke(app, [*args, *maps, "--json"])
    assert result.exit_code == 0, result.output
    rows = len(sample.read_text().splitlines())
    assert json.loads(result.output)["imported"] == rows
    table = runner.invoke(app, [*args, *maps])
    assert "already there" in table.output and f"{rows:,}" in table.output
    out = tmp_path / "out.jsonl"
    exported = runner.invoke(app, ["export", "events", str(out), "--format", "jsonl", "-w", str(workspace)])
    assert exported.exit_code == 0 and len(out.read_text().splitlines()) == rows
    bad = runner.invoke(app, ["import", "events", str(sample), "-w", str(workspace), "--map", "x=nowhere"])
    assert bad.exit_code == 65 and "unknown field 'nowhere'" in bad.output


def test_gzipped_csv_and_tsv_are_read(runtime: Runtime, tmp_path: Path) -> None:
    import gzip

    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"user_id,event\nu1,x\nu2,y\n"))
    (tmp_path / "b.tsv").write_text("user_id\tevent\nu3\tz\n")
    reports = [import_file(runtime.store, tmp_path / n, "events", now_ms=now(runtime)) for n in ("a.csv.gz", "b.tsv")]
    assert [(r.format, r.imported) for r in reports] == [("csv", 2), ("csv", 1)]
    assert reports[0].rows == 2


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_simulated_shop_files_import_as_they_are(runtime: Runtime, tmp_path: Path, suffix: str) -> None:
    from tailormail.simulate import simulate_to_file

    made = simulate_to_file(tmp_path / f"shop.{suffix}", customers=20, days=10, seed=3, end=T0)
    assert made.path is not None and made.catalog_path is not None
    events_report = import_file(runtime.store, made.path, "events", now_ms=now(runtime))
    products_report = import_file(runtime.store, made.catalog_path, "products", now_ms=now(runtime))
    assert (events_report.imported, events_report.errors) == (made.messages, 0)
    assert (products_report.imported, products_report.errors) == (made.products, 0)
    assert count(runtime, profiles) == 20 and count(runtime, products) == made.products
    assert import_file(runtime.store, made.path, "events", now_ms=now(runtime)).imported == 0
