"""The generated per-recipient walk appends exactly the pieces the parts' own walk appends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailormail.content import Recipient, compile_template
from tailormail.content.blocks import variant_flag
from tailormail.content.context import build_context
from tailormail.content.engines import LANGUAGES
from tailormail.content.fastpath import compile_pieces
from tailormail.content.parts import SLOT_CLOSE, SLOT_MID, SLOT_OPEN, Fragment, split

VALUES: list[Any] = ["Ada", "", "<b>&'\"", "Zoë", None, 0, 7, 1.5, True, False, [], ["x"], {"a": 1}]


def slot(slot_id: int, url: str) -> str:
    return f"{SLOT_OPEN}{slot_id}{SLOT_MID}{url}{SLOT_CLOSE}"


SOURCES = [
    (".liquid", "Hi {{ customer.firstName }}!"),
    (".liquid", "{{ customer.firstName | default: 'friend' }}"),
    (".liquid", "{{ customer.list[1] }} {{ customer.list.first }}"),
    (
        ".liquid",
        "{% if customer.x %}x{% elsif customer.firstName %}yes {{ customer.firstName }}{% else %}no{% endif %}",
    ),
    (".liquid", "{% unless customer.firstName %}none{% endunless %}{% if customer.firstName == 'Ada' %}A{% endif %}"),
    (".liquid", "{% if customer.firstName %}{% if customer.x %}{% else %}{% endif %}{% endif %}"),
    (".liquid", f'<a href="{slot(0, "https://a.example/?a=1&amp;b=2")}">a</a>'),
    (
        ".liquid",
        f'<a href="{slot(1, "{{ customer.firstName }}")}">a</a>'
        " {% for i in customer.list %}{{ i }}{% endfor %}",
    ),
    (".liquid", f'{{% if customer.firstName %}}<a href="{slot(2, "https://b.example/")}">b</a>{{% endif %}}'),
    (".hbs", "{{customer.firstName}} {{#if customer.firstName}}yes{{else}}no{{/if}}"),
]


def _signer(slot_id: int, url: str) -> str:
    return f'https://t.example/c/{slot_id}?u={url}&x="<'


def _both(fragment: Fragment, context: dict[str, Any]) -> tuple[list[str], list[str]]:
    walked: list[str] = []
    fragment.walk(context, _signer, walked)
    generated: list[str] = []
    compile_pieces(fragment)(context, _signer, generated)
    return walked, generated


@pytest.mark.parametrize(("extension", "source"), SOURCES)
@pytest.mark.parametrize("escape", [True, False])
@pytest.mark.parametrize("value", VALUES)
def test_generated_walk_matches_the_parts_walk(extension: str, source: str, escape: bool, value: Any) -> None:
    fragment = split(source, LANGUAGES[extension], escape=escape, where="t")
    contexts: list[dict[str, Any]] = [{"customer": {"firstName": value, "x": value, "list": ["a", value]}}]
    contexts += [{"customer": {}}, {}, {"customer": {"firstName": value, "list": value}}]
    if extension == ".liquid":  # pybars itself fails on these where it expects a mapping
        contexts += [{"customer": None}, {"customer": "text"}, {"customer": [value]}]
    for context in contexts:
        walked, generated = _both(fragment, context)
        assert generated == walked, context
        static = {id(p) for p in fragment.parts if p.__class__ is str}  # the same objects: their QP is cached
        assert all(a is b for a, b in zip(walked, generated, strict=True) if id(a) in static)


def test_preset_templates_render_the_same_both_ways(tmp_path: Path) -> None:
    from tailormail.workspace import init_workspace

    root = tmp_path / "ws"
    init_workspace(root)
    names = sorted(p.stem for p in (root / "templates").glob("*.liquid"))
    assert len(names) >= 5
    products = [
        {"name": f"P<{i}>", "price": f"{i}.00", "url": f"https://s.example/p/{i}", "image": "i.png"} for i in range(4)
    ]
    people = [
        Recipient(1, "a@example.com", "k:1", traits={"firstName": "Ada", "state": "CA"}, recommendations=products),
        Recipient(2, "b@example.com", "k:2", traits={"firstName": "<script>", "country": "DE"}, recommendations=[]),
        Recipient(3, "c@example.com", "k:3", traits={}, purchase_history=[{}] * 4, recommendations=products[:1]),
    ]
    links = {"unsubscribe": "https://t.example/u/x", "preferences": "https://t.example/p/x", "open_pixel": "o.gif"}
    for name in names:
        compiled = compile_template(root, name)
        variants: list[dict[str, Any]] = [{}]
        variants += [{n: v.name, variant_flag(n, v.name): True} for n, b in compiled.blocks.items() for v in b.variants]
        assert len(variants) > 1 or not any(b.variants for b in compiled.blocks.values())
        for recipient in people:
            recipient.links = dict(links)
            for variant in variants:
                context = build_context(recipient, campaign={"name": "c"}, variant=variant)
                for fragment in (compiled.html, compiled.text):
                    walked, generated = _both(fragment, context)
                    assert generated == walked, (name, recipient.profile_id, variant)
