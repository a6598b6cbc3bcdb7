"""The preset layout, blocks and templates `tailormail init` writes compile, render and choose variants."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import pytest

from tailormail.clock import parse_time
from tailormail.content import Addressee, DataSources, Envelope, Recipient, compile_template, render_batch, render_for
from tailormail.content.templates import template_names
from tailormail.workspace import init_workspace

WHEN = parse_time("2026-03-02T12:00:00Z")

ENVELOPE = Envelope("shop@example.com", "mail.example.com", WHEN)
RECS = [
    {
        "name": f"Product {i}",
        "price": f"{20 + i}.00",
        "url": f"https://shop.example.com/p/{i}",
        "image": f"https://img/{i}.jpg",
    }
    for i in range(4)
]
PRESET_TEMPLATES = [
    "birthday",
    "cart_recommendations",
    "cart_reminder",
    "cross_sell",
    "newsletter",
    "welcome",
    "win_back",
]


@pytest.fixture(scope="module")
def presets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("presets") / "ws"
    init_workspace(root)
    return root


def test_init_writes_one_template_per_preset_and_the_six_blocks(presets: Path) -> None:
    assert template_names(presets) == PRESET_TEMPLATES
    assert sorted(p.stem for p in (presets / "blocks").iterdir()) == [
        "footer", "greeting", "hero", "loyalty_reward", "product_grid", "regional_offer",
    ]  # fmt: skip


@pytest.mark.parametrize("name", PRESET_TEMPLATES)
def test_every_preset_renders_with_links_and_a_text_part(presets: Path, name: str) -> None:
    compiled = compile_template(presets, name)
    links = {k: f"https://t.example/{k}" for k in ("unsubscribe", "preferences", "view_in_browser")}
    event = {"products": [{"name": "Trail Boot", "price": "129.00", "quantity": 2, "image_url": "https://img/b.jpg"}]}
    recipient = Recipient(
        1, "ada@example.com", "k", traits={"firstName": "Ada"}, recommendations=RECS, links=links, event=event
    )
    result = render_batch(compiled, [recipient], ENVELOPE)[0]
    assert result.ok, result.error
    msg = email.message_from_bytes(result.message, policy=email.policy.default)
    text, html = msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()
    assert "Unsubscribe (https://t.example/unsubscribe)" in text
    assert "{{" not in html and "{%" not in html and "tmtag" not in html
    assert "@media" in html  # responsive rules kept after inlining
    if name == "cart_reminder":
        assert "Trail Boot" in text and "× 2" in text
    if name != "birthday":
        assert "Ada" in msg["Subject"]


@pytest.mark.parametrize(
    ("traits", "purchases", "expected"),
    [
        ({"state": "CA"}, 0, ["Free same-day delivery in California"]),
        ({"language": "es-MX", "country": "MX"}, 0, ["¡Hola", "Envío gratis"]),
        ({"country": "DE"}, 0, ["Free international shipping", "for DE"]),
        ({"country": "US", "state": "NY"}, 3, ["one of our best customers", "Free shipping on orders over $50"]),
        ({"country": "US"}, 1, ["Two more orders to VIP"]),
    ],
)
def test_content_rules_pick_variants_through_the_segment_engine(
    workspace: Path, runtime: Any, traits: dict[str, Any], purchases: int, expected: list[str]
) -> None:
    messages: list[dict[str, Any]] = [
        {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com", "firstName": "Ada", **traits},
         "timestamp": "2026-01-01T00:00:00Z"},
    ]  # fmt: skip
    messages += [
        {"type": "track", "userId": "u1", "event": "purchase", "properties": {"revenue": 30},
         "timestamp": f"2026-02-0{d + 1}T00:00:00Z"}
        for d in range(purchases)
    ]  # fmt: skip
    runtime.ingestor.ingest_raw(messages)
    with runtime.store.read() as conn:
        from tailormail.store.profiles import profile_ids_by_user

        pid = profile_ids_by_user(conn, ["u1"])["u1"]
    compiled = compile_template(workspace, "cross_sell")
    sources = DataSources(settings=runtime.settings, recommend=lambda conn, ids: {i: RECS for i in ids})
    now_ms = int(WHEN.timestamp() * 1000)
    (result,) = render_for(runtime.store, compiled, [Addressee(pid, "k1")], ENVELOPE, sources, now_ms=now_ms)
    assert result.ok, result.error
    text = email.message_from_bytes(result.message, policy=email.policy.default).get_body(("plain",)).get_content()
    for phrase in expected:
        assert phrase in text
