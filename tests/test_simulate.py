"""The simulated shop: determinism, realistic shape, and where it is written."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tailormail.cli import app
from tailormail.config import EventNames
from tailormail.errors import ValidationError
from tailormail.ingest.messages import Message, parse_message
from tailormail.runtime import open_runtime
from tailormail.simulate.customers import ARCHETYPE_NAMES, CustomerBlock
from tailormail.simulate.output import segment_message
from tailormail.simulate.places import PLACES
from tailormail.simulate.shop import Customer, Shop, ShopSpec
from tailormail.store.schema import events, products, profiles

END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
runner = CliRunner()


def spec(customers: int = 600, days: int = 60, seed: int = 7) -> ShopSpec:
    return ShopSpec.ending(END, customers=customers, days=days, seed=seed)


def raw_messages(s: ShopSpec) -> list[dict]:
    return [segment_message(m) for m in Shop(s).messages()]


@cache
def plan() -> list[tuple[CustomerBlock, int, Customer]]:
    """(block, row, customer) of every customer of the default spec."""
    return [(block, k, c) for block, customers in Shop(spec()).blocks() for k, c in enumerate(customers)]


def tracks(customer: Customer, name: str | None = None) -> list[Message]:
    return [m for m in customer.messages if m.type == "track" and (name is None or m.event == name)]


def archetype(block: CustomerBlock, k: int) -> str:
    return ARCHETYPE_NAMES[int(block.archetype[k])]


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_messages_and_another_seed_does_not() -> None:
    first = raw_messages(spec(200, 30, seed=3))
    assert first == raw_messages(spec(200, 30, seed=3))
    other = raw_messages(spec(200, 30, seed=4))
    assert [m["userId"] for m in other][:1] != [m["userId"] for m in first][:1]
    assert [m.get("traits") for m in other[:1]] != [m.get("traits") for m in first[:1]]


def test_a_customer_is_the_same_person_whatever_the_total() -> None:
    small = raw_messages(spec(150, 30))
    large = raw_messages(spec(400, 30))
    assert large[: len(small)] == small
    assert len({m["userId"] for m in large}) == 400


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("customers", {"customers": 0}), ("days", {"days": 0}), ("seed", {"seed": -1})],
)
def test_impossible_sizes_are_clear_errors(field: str, kwargs: dict) -> None:
    with pytest.raises(ValidationError) as caught:
        spec(**kwargs)
    assert caught.value.field == field


# --- shape -------------------------------------------------------------------------------------


def test_every_message_belongs_to_an_identified_customer_in_time_order_within_the_window() -> None:
    s = spec()
    start_ms, end_ms = s.start * 1000, s.end * 1000
    for _block, _k, customer in plan():
        first, *rest = customer.messages
        assert first.type == "identify" and first.user_id == customer.user_id
        assert all(m.user_id == customer.user_id and m.type == "track" for m in rest)
        stamps = [m.timestamp for m in customer.messages]
        assert stamps == sorted(stamps)
        assert start_ms <= stamps[0] and stamps[-1] < end_ms
    ids = [m.message_id for *_, c in plan() for m in c.messages]
    assert len(ids) == len(set(ids))


def test_purchase_revenue_is_the_sum_of_its_lines() -> None:
    purchases = [m for *_, c in plan() for m in tracks(c, "purchase")]
    assert len(purchases) > 100
    for m in purchases:
        lines = m.properties["products"]
        assert lines and all(set(line) >= {"product_id", "name", "category", "price", "quantity"} for line in lines)
        assert m.properties["revenue"] == round(sum(line["price"] * line["quantity"] for line in lines), 2)
        assert m.revenue == m.properties["revenue"] and m.properties["currency"] == "USD"
    assert len({m.properties["order_id"] for m in purchases}) == len(purchases)


def test_some_carts_are_abandoned_and_some_purchases_come_later() -> None:
    carts: set[str] = set()
    checked_out: set[str] = set()
    delays = []
    for *_, c in plan():
        carts |= {m.properties["cart_id"] for m in tracks(c, "add_to_cart")}
        checkouts = tracks(c, "checkout_started")
        checked_out |= {m.properties["cart_id"] for m in checkouts}
        last_add = {m.properties["cart_id"]: m.timestamp for m in tracks(c, "add_to_cart")}
        delays += [m.timestamp - last_add[m.properties["cart_id"]] for m in checkouts]
    abandoned = carts - checked_out
    assert 0.2 < len(abandoned) / len(carts) < 0.8
    assert any(d > 3_600_000 for d in delays) and any(d < 600_000 for d in delays)


def test_lapsing_customers_stop_and_browsers_never_buy() -> None:
    s = spec()
    seen = Counter()
    for block, k, c in plan():
        kind = archetype(block, k)
        seen[kind] += 1
        if kind == "lapsing":
            assert int(block.active_to[k]) < s.end
            assert all(m.timestamp < int(block.active_to[k]) * 1000 for m in c.messages)
        if kind == "browser":
            assert not tracks(c, "purchase")
    assert seen["lapsing"] > 20 and seen["browser"] > 50


def test_buyers_differ_a_lot_and_newcomers_sign_up_late() -> None:
    s = spec()
    orders = defaultdict(list)
    for block, k, c in plan():
        orders[archetype(block, k)].append(len(tracks(c, "purchase")))
        if archetype(block, k) == "newcomer":
            created = datetime.fromisoformat(c.messages[0].traits["createdAt"].replace("Z", "+00:00"))
            assert created.timestamp() > s.start + 0.7 * (s.end - s.start)
    mean = {kind: sum(v) / len(v) for kind, v in orders.items()}
    assert mean["heavy"] > 2 * mean["regular"] > 2 * mean["occasional"] > 0


def test_traits_follow_the_segment_spec_and_agree_with_each_other() -> None:
    zones = {(p.country, p.state, p.city): p for p in PLACES}
    emails = set()
    for *_, c in plan():
        t = c.messages[0].traits
        place = zones[(t["country"], t["state"], t["city"])]
        assert t["location"] == t["state"] and t["timezone"] == place.timezone and t["language"] == place.language
        ZoneInfo(t["timezone"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", t["birthday"]) and 1940 < int(t["birthday"][:4]) < 2009
        assert re.fullmatch(r"[a-z]+\.[a-z]+\.\d+@(mail\.)?example\.(com|net|org)", t["email"])
        assert isinstance(t["consent"]["email"], bool) and t["firstName"] and t["lastName"]
        emails.add(t["email"])
    assert len(emails) == len(plan())
    assert any(c.messages[0].traits["location"] == "California" for *_, c in plan())


def test_sessions_happen_in_local_daytime_mostly() -> None:
    hours = Counter()
    for *_, c in plan():
        zone = ZoneInfo(c.messages[0].traits["timezone"])
        for m in tracks(c, "product_view"):
            hours[datetime.fromtimestamp(m.timestamp / 1000, zone).hour] += 1
    daytime = sum(n for h, n in hours.items() if 8 <= h <= 23)
    assert daytime / sum(hours.values()) > 0.85


def test_customers_prefer_some_categories() -> None:
    shares = []
    for *_, c in plan():
        views = Counter(m.properties["category"] for m in tracks(c, "product_view"))
        if sum(views.values()) >= 20:
            shares.append(views.most_common(1)[0][1] / sum(views.values()))
    assert len(shares) > 20
    assert sum(shares) / len(shares) > 0.3  # uniform taste over 10 categories would give ~0.15


def test_event_names_come_from_the_settings() -> None:
    names = EventNames("Product Viewed", "Product Added", "Checkout Started", "Order Completed")
    s = ShopSpec.ending(END, customers=50, days=30, seed=1, events=names)
    used = {m.event for m in Shop(s).messages() if m.type == "track"}
    assert used == {"Product Viewed", "Product Added", "Checkout Started", "Order Completed"}


# --- into a workspace and into files -----------------------------------------------------------


def simulate_cli(*args: str) -> dict:
    result = runner.invoke(app, ["simulate", "--end", "2026-03-02T12:00:00Z", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_simulate_into_a_workspace_and_again_adds_nothing(workspace: Path) -> None:
    first = simulate_cli("--customers", "250", "--days", "30", "--seed", "5", "--workspace", str(workspace))
    assert first["stored"] == first["messages"] > 250 and first["already_there"] == 0
    rt = open_runtime(workspace)
    with rt.store.read() as conn:
        counts = [conn.execute(select(func.count()).select_from(t)).scalar_one() for t in (profiles, events, products)]
        california = conn.execute(
            select(func.count()).where(profiles.c.traits["location"].as_string() == "California")
        ).scalar_one()
    rt.close()
    assert counts == [250, first["messages"], 400]
    assert california > 0
    again = simulate_cli("--customers", "250", "--days", "30", "--seed", "5", "--workspace", str(workspace))
    assert again["stored"] == 0 and again["already_there"] == first["messages"]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_simulate_to_a_file_is_byte_for_byte_repeatable_and_valid_segment(tmp_path: Path, suffix: str) -> None:
    paths = [tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"]
    for path in paths:
        out = simulate_cli("--customers", "120", "--days", "20", "--out", str(path), "--workspace", str(tmp_path))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert (tmp_path / f"a.products{suffix}").exists()
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in paths[0].read_text(encoding="utf-8").splitlines()]
    else:
        rows = pq.read_table(paths[0]).to_pylist()
        for row in rows:
            for name in ("properties", "traits", "context"):
                row[name] = json.loads(row[name]) if row[name] else None
    assert len(rows) == out["messages"]
    expected = raw_messages(ShopSpec.ending(END, customers=120, days=20, seed=7))
    assert [r["messageId"] for r in rows] == [m["messageId"] for m in expected]
    parsed = [parse_message({k: v for k, v in r.items() if v is not None}, received_ms=0) for r in rows[:200]]
    assert {m.type for m in parsed} == {"identify", "track"}


def test_simulate_to_an_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--customers", "5", "--out", str(tmp_path / "shop.xlsx")])
    assert result.exit_code == 65
    assert "shop.xlsx" in result.output and ".jsonl or .parquet" in result.output


def test_a_bad_end_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--end", "yesterday", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 65 and "--end 'yesterday'" in result.output


def stored_shop(workspace: Path) -> tuple[list, list, list]:
    rt = open_runtime(workspace)
    with rt.store.read() as conn:
        found = (
            conn.execute(select(profiles.c.user_id, profiles.c.traits).order_by(profiles.c.user_id)).all(),
            conn.execute(
                select(
                    events.c.message_id, events.c.event, events.c.ts, events.c.properties, events.c.revenue
                ).order_by(events.c.message_id)
            ).all(),
            conn.execute(select(products).order_by(products.c.product_id)).mappings().all(),
        )
    rt.close()
    return found


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_simulated_file_imports_as_the_same_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str):
    from tailormail.workspace import init_workspace

    monkeypatch.delenv("TAILORMAIL_DATABASE_URL", raising=False)  # two workspaces, two SQLite files
    direct, imported = tmp_path / "direct", tmp_path / "imported"
    init_workspace(direct)
    init_workspace(imported)
    simulate_cli("--customers", "80", "--days", "20", "--workspace", str(direct))
    file = tmp_path / f"shop{suffix}"
    simulate_cli("--customers", "80", "--days", "20", "--out", str(file), "--workspace", str(imported))
    for kind, path in (("events", file), ("products", tmp_path / f"shop.products{suffix}")):
        result = runner.invoke(app, ["import", kind, str(path), "--workspace", str(imported)])
        assert result.exit_code == 0, result.output
    want, got = stored_shop(direct), stored_shop(imported)
    assert got[0] == want[0] and got[1] == want[1]
    assert [(p["product_id"], p["name"], p["price"], p["url"]) for p in got[2]] == [
        (p["product_id"], p["name"], p["price"], p["url"]) for p in want[2]
    ]
