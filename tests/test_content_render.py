"""Content: templates in both languages, blocks and variants, compile once, render per recipient, MIME."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tailormail.content import (
    Addressee,
    DataSources,
    Envelope,
    Recipient,
    choose_variants,
    compile_template,
    message_id_for,
    render_batch,
    render_for,
)
from tailormail.content.engines import LANGUAGES, TemplateError
from tailormail.content.parts import Output, split
from tailormail.errors import ValidationError
from tailormail.store import content as content_store
from tailormail.track.signing import sign, verify

WHEN = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ENVELOPE = Envelope("shop@example.com", "mail.example.com", WHEN, campaign={"name": "spring"})
RECS = [{"name": "Trail Shoe", "price": "89.00", "url": "https://shop.example/p/1", "image": "https://img/1.png"}]


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def person(pid: int, **traits: Any) -> Recipient:
    extra = {k: traits.pop(k) for k in ("purchase_history", "recommendations", "links", "event") if k in traits}
    return Recipient(pid, traits.pop("email", f"p{pid}@example.com"), f"send-1:{pid}", traits=traits, **extra)


def parts_of(result: Any) -> tuple[email.message.EmailMessage, str, str]:
    assert result.ok, result.error
    msg = email.message_from_bytes(result.message, policy=email.policy.default)
    return msg, msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(
        root,
        "templates/greeting.hbs",
        '---\nsubject: "Hi {{user.firstName}}"\n---\n'
        "{{#if segment.purchaseHistory}}Welcome back, {{user.firstName}}!{{else}}Welcome, {{user.firstName}}!{{/if}}\n"
        "{{#each user.recommendations}} {{this.name}} - {{this.price}} {{/each}}\n",
    )
    write(
        root,
        "templates/regional.liquid",
        "---\nsubject: Hello {{ customer.firstName }}\nrequired: [customer.firstName]\n---\n"
        "{% render 'hero' %}\n<mj-section><mj-column><mj-text>Hi {{ customer.firstName }}. "
        "{% if customer.location == 'California' %}Free shipping to California!{% endif %} "
        '<a href="https://shop.example/sale?a=1&b=2">Sale</a> <a href="{{ links.unsubscribe }}">Unsubscribe</a>'
        "</mj-text></mj-column></mj-section>\n",
    )
    write(
        root,
        "blocks/hero.liquid",
        "---\nvariants:\n  - name: vip\n    rule: {trait: vip, equals: true}\n    content: |\n"
        '      <mj-section><mj-column><mj-text>VIP hero</mj-text><mj-button href="https://shop.example/vip">VIP</mj-button>'
        "</mj-column></mj-section>\n---\n"
        '<mj-section><mj-column><mj-text>Default hero</mj-text><mj-button href="https://shop.example/">Shop</mj-button>'
        "</mj-column></mj-section>\n",
    )
    return root


def vip_rule(rule: dict[str, Any], ids: Any) -> set[int]:
    """A stand-in for segments' evaluator: trait equality on the people of this test."""
    return {pid for pid in ids if PEOPLE.get(pid, {}).get(rule["trait"]) == rule["equals"]}


PEOPLE: dict[int, dict[str, Any]] = {1: {"vip": True}, 2: {}}


@pytest.mark.parametrize(
    ("history", "expected"),
    [([{"order_id": "o1"}], "Welcome back, Ada!"), ([], "Welcome, Ada!")],
)
def test_mission_handlebars_example(ws: Path, history: list[Any], expected: str) -> None:
    compiled = compile_template(ws, "greeting")
    recipient = person(1, firstName="Ada", purchase_history=history, recommendations=RECS * 2)
    _, text, html = parts_of(render_batch(compiled, [recipient], ENVELOPE)[0])
    assert expected in text and expected in html
    assert text.count("Trail Shoe - 89.00") == 2


@pytest.mark.parametrize(("state", "shown"), [("CA", True), ("California", True), ("NY", False), (None, False)])
def test_mission_liquid_example(ws: Path, state: str | None, shown: bool) -> None:
    compiled = compile_template(ws, "regional")
    traits = {"firstName": "Ada", **({"state": state} if state else {})}
    _, text, html = parts_of(render_batch(compiled, [person(2, **traits)], ENVELOPE)[0])
    assert ("Free shipping to California!" in html) is shown
    assert ("Free shipping to California!" in text) is shown


@pytest.mark.parametrize("template", ["greeting", "regional"])
def test_profile_values_are_escaped_in_html_and_plain_in_text(ws: Path, template: str) -> None:
    compiled = compile_template(ws, template)
    result = render_batch(compiled, [person(2, firstName="<script>x</script>")], ENVELOPE)[0]
    msg, text, html = parts_of(result)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<script>x</script>" in text
    assert "<script>x</script>" in msg["Subject"]  # a header is text, not HTML


FAST_PATH_VALUES = ["Ada", "<b>&'\"", "", None, 7, 9.5, True, False, [1, 2], {"a": 1}]


FAST_PATH_SOURCES = [
    (".liquid", "{{ customer.firstName }}"),
    (".liquid", "{{ customer.firstName | default: 'friend' }}"),
    (".liquid", '{{ customer.firstName | default: "<friend>" }}'),
    (".liquid", "{{ customer.list[1] }}"),
    (".hbs", "{{customer.firstName}}"),
]


@pytest.mark.parametrize(("extension", "source"), FAST_PATH_SOURCES)
@pytest.mark.parametrize("escape", [True, False])
@pytest.mark.parametrize("value", FAST_PATH_VALUES)
def test_fast_output_prints_exactly_what_the_language_prints(
    extension: str, source: str, escape: bool, value: Any
) -> None:
    language = LANGUAGES[extension]
    fragment = split(source, language, escape=escape, where="t")
    assert isinstance(fragment.parts[0], Output)
    for context in ({"customer": {"firstName": value, "list": ["a", value]}}, {"customer": {}}, {}):
        assert fragment.render(context) == language.compile(source, escape=escape, where="t")(context), context


CONDITION_SOURCES = [
    (".liquid", "{% if customer.firstName %}yes{% endif %}"),
    (".liquid", "{% if customer.x %}x{% elsif customer.firstName %}yes{% else %}no{% endif %}"),
    (".liquid", "{% unless customer.firstName %}none{% else %}some{% endunless %}"),
    (".liquid", "{% if customer.firstName == 'Ada' %}Ada{% endif %}"),
    (".liquid", "{% if customer.first %}first{% endif %}"),
    (".hbs", "{{#if customer.firstName}}yes{{else}}no{{/if}}"),
]


@pytest.mark.parametrize(("extension", "source"), CONDITION_SOURCES)
@pytest.mark.parametrize("value", FAST_PATH_VALUES)
def test_split_conditions_print_exactly_what_the_language_prints(extension: str, source: str, value: Any) -> None:
    language = LANGUAGES[extension]
    fragment = split(source, language, escape=True, where="t")
    contexts = [{"customer": {"firstName": value}}, {"customer": {}}, {"customer": "text"}, {}, {"customer": None}]
    contexts += [{"customer": [value]}, {"customer": {"firstName": 0}}, {"customer": {"firstName": 0.0}}]
    if extension == ".hbs":
        contexts = contexts[:4]  # pybars itself fails on a list or None where it expects a mapping
    for context in contexts:
        assert fragment.render(context) == language.compile(source, escape=True, where="t")(context), context


def test_variants_chosen_per_person_with_one_rule_call_per_variant(ws: Path) -> None:
    compiled = compile_template(ws, "regional")
    calls: list[Any] = []

    def evaluate(rule: dict[str, Any], ids: Any) -> set[int]:
        calls.append(list(ids))
        return vip_rule(rule, ids)

    variants = choose_variants(compiled, [1, 2], evaluate)
    assert calls == [[1, 2]]
    assert variants[1]["hero"] == "vip" and variants[2]["hero"] == "default"
    results = render_batch(compiled, [person(1, firstName="A"), person(2, firstName="B")], ENVELOPE, variants=variants)
    (_, _, vip_html), (_, _, plain_html) = (parts_of(r) for r in results)
    assert "VIP hero" in vip_html and "Default hero" not in vip_html
    assert "Default hero" in plain_html and "VIP hero" not in plain_html


def test_updating_a_block_updates_every_template_using_it(ws: Path) -> None:
    write(ws, "templates/other.liquid", "---\nsubject: Other\n---\n{% render 'hero' %}\n")
    before = [compile_template(ws, n) for n in ("regional", "other")]
    hero = (ws / "blocks/hero.liquid").read_text().replace("Default hero", "Spring hero")
    write(ws, "blocks/hero.liquid", hero)
    after = [compile_template(ws, n) for n in ("regional", "other")]
    for old, new in zip(before, after, strict=True):
        assert old.digest != new.digest
        _, _, html = parts_of(render_batch(new, [person(2, firstName="B")], ENVELOPE)[0])
        assert "Spring hero" in html
    assert compile_template(ws, "other") is after[1]  # unchanged sources: the cached compile


def test_one_failing_recipient_does_not_stop_the_others(ws: Path) -> None:
    compiled = compile_template(ws, "regional")

    def signer(key: str, slot: Any, url: str) -> str:
        if key.endswith(":4"):
            raise RuntimeError("signing service down")
        return url

    people = [
        person(1, firstName="A"),
        person(2, firstName=""),
        person(3, firstName="C", email="nope"),
        person(4, firstName="D"),
        person(5, firstName="E"),
    ]
    results = render_batch(compiled, people, ENVELOPE, signer=signer)
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert results[1].error == "required value customer.firstName is empty"
    assert results[2].error == "no valid email address"
    assert "signing service down" in (results[3].error or "")


def test_links_become_slots_signed_per_recipient(ws: Path) -> None:
    compiled = compile_template(ws, "regional")
    assert [(s.block, s.url, s.kind) for s in compiled.slots] == [
        ("hero", "https://shop.example/vip", "tracked"),
        ("hero", "https://shop.example/", "tracked"),
        (None, "https://shop.example/sale?a=1&b=2", "tracked"),
        (None, "{{ links.unsubscribe }}", "system"),
    ]

    def signer(key: str, slot: Any, url: str) -> str:
        return "https://t.example/c/" + sign("s3cret", "click", {"k": key, "s": slot.id, "u": url})

    people = [person(p, firstName="A", links={"unsubscribe": f"https://t.example/u/{p}"}) for p in (1, 2)]
    seen = []
    for result in render_batch(compiled, people, ENVELOPE, signer=signer):
        _, text, html = parts_of(result)
        token = html.split('href="https://t.example/c/')[1].split('"')[0]
        seen.append(verify("s3cret", "click", token))
        assert f"https://t.example/u/{result.profile_id}" in html  # the unsubscribe link is not wrapped
        assert "Sale (https://t.example/c/" in text
        assert "https://shop.example/sale" not in html
    assert [s["k"] for s in seen] == ["send-1:1", "send-1:2"]
    assert seen[0]["u"] == "https://shop.example/"


def test_mime_structure_parses_back(ws: Path) -> None:
    compiled = compile_template(ws, "regional")
    result = render_batch(compiled, [person(2, firstName="Zoë")], ENVELOPE)[0]
    msg, text, html = parts_of(result)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in msg.iter_parts())
    assert all(p.get_content_charset() == "utf-8" for p in msg.iter_parts())
    assert msg["Subject"] == "Hello Zoë"
    assert msg["Message-ID"] == message_id_for("send-1:2", "mail.example.com") == result.message_id
    assert msg["Date"].datetime == WHEN
    assert msg["To"] == "p2@example.com" and msg["From"] == "shop@example.com"
    assert "Hi Zoë." in text and "Hi Zoë." in html
    assert b"\r\n" in result.message and b"\n\n" not in result.message.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    ("key", "same_as", "equal"),
    [("send-1:2", "send-1:2", True), ("send-1:2", "send-1:3", False)],
)
def test_message_id_derives_from_the_idempotency_key(key: str, same_as: str, equal: bool) -> None:
    assert (message_id_for(key, "d.example") == message_id_for(same_as, "d.example")) is equal


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<mj-section><mj-column>\n{% if x %}<mj-text>a</mj-text>{% endif %}</mj-column></mj-section>", "line 5"),
        ("{% if x %}never closed", "if"),
        ("{{#if x}}never closed", "if"),
    ],
)
def test_template_errors_name_the_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    extension = ".hbs" if body.startswith("{{#") else ".liquid"
    write(tmp_path, f"templates/bad{extension}", f"---\nsubject: x\n---\n{body}\n")
    with pytest.raises(TemplateError) as caught:
        compile_template(tmp_path, "bad")
    assert "bad" in str(caught.value) and message in str(caught.value)


def test_render_for_records_versions_and_failures(ws: Path, runtime: Any) -> None:
    from tailormail.store.profiles import create_profiles, set_traits

    with runtime.store.begin() as conn:
        ids = create_profiles(conn, ["u1", "u2"], 0)
        set_traits(conn, ids[0], {"firstName": "Ada", "email": "ada@example.com", "vip": True}, 0)
        set_traits(conn, ids[1], {"firstName": "", "email": "bo@example.com"}, 0)
    PEOPLE.update({ids[0]: {"vip": True}, ids[1]: {}})
    sources = DataSources(settings=runtime.settings)  # variant rules run through the segment engine
    compiled = compile_template(ws, "regional")
    addressees = [Addressee(pid, f"k:{pid}") for pid in ids]
    results = render_for(runtime.store, compiled, addressees, ENVELOPE, sources, now_ms=1000)
    assert [r.ok for r in results] == [True, False]
    assert "VIP hero" in parts_of(results[0])[2]
    with runtime.store.read() as conn:
        failures = content_store.render_failures_of(conn, "regional")
        versions = content_store.template_versions_of(conn, "regional")
    assert [(f["profile_id"], f["reason"]) for f in failures] == [
        (ids[1], "required value customer.firstName is empty")
    ]
    assert [v["content_hash"] for v in versions] == [compiled.digest]
    assert versions[0]["blocks"] == ["hero"] and len(versions[0]["slots"]) == 4


def test_invalid_variant_rule_names_the_block_and_field(ws: Path) -> None:
    hero = (ws / "blocks/hero.liquid").read_text().replace("{trait: vip, equals: true}", "{trait: vip, equal: true}")
    write(ws, "blocks/hero.liquid", hero)
    with pytest.raises(ValidationError) as caught:
        compile_template(ws, "regional")
    assert "hero.liquid variants[0] (vip)" in str(caught.value.source) and "equal" in str(caught.value)


@pytest.mark.parametrize(
    "subject",
    [
        "Plain subject",
        "Ünïcödé " * 12,
        "Hi\r\nBcc: victim@example.com",
        "An ASCII subject that is rather long " * 4,
        "=?utf-8?q?looks_encoded?=",
    ],
)
def test_subject_headers_round_trip_without_injection(subject: str) -> None:
    from tailormail.content.mime import assemble

    raw = assemble(
        sender=("Shöp", "shop@example.com"), to="a@example.com", subject=subject, text="t", html="<p>h</p>",
        message_id="<x@example.com>", date=WHEN,
    )  # fmt: skip
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == " ".join(subject.split())
    assert msg["Bcc"] is None and msg["From"].addresses[0].display_name == "Shöp"


def test_handlebars_templates_use_blocks_in_their_language(ws: Path) -> None:
    write(ws, "blocks/banner.hbs", "<p>Hello {{customer.firstName}} from the banner</p>\n")
    write(ws, "blocks/note.liquid", "<p>A note without tags</p>\n")
    write(ws, "templates/hbs_blocks.hbs", "---\nsubject: Hi\n---\n{{> banner}}{{> note}}\n")
    _, text, _ = parts_of(render_batch(compile_template(ws, "hbs_blocks"), [person(1, firstName="Ada")], ENVELOPE)[0])
    assert "Hello Ada from the banner" in text and "A note without tags" in text
    write(ws, "blocks/liquid_only.liquid", "<p>{% if customer.vip %}VIP{% endif %}</p>\n")
    write(ws, "templates/wrong.hbs", "---\nsubject: Hi\n---\n{{> liquid_only}}\n")
    with pytest.raises(TemplateError, match="written in liquid"):
        compile_template(ws, "wrong")


QP_PIECES = [
    "https://t.example.com/c/" + "eyJiIjoicHJvZHVjdF9ncmlkIiw" * 12 + ".AbC-_x",
    "Hi Ada, ",
    "x" * 75,
    "x" * 76,
    "y" * 77,
    "Zoë <b>&amp;</b> — ✓",
    "a=b=c",
    ".",
    "tab\there",
    " " * 100,
    "word " * 40,
    "é" * 40,
    "a" + "é" * 40,
    "ab" + "é" * 40,
    "x" * 74 + "é",
    "",
]


@pytest.mark.parametrize("count", [1, 2, len(QP_PIECES)])
def test_quoted_printable_decodes_back_with_short_lines(count: int) -> None:
    import quopri

    from tailormail.content.mime import qp_lines, qp_pieces

    pieces = QP_PIECES[:count]
    for encoded, expected in ((qp_pieces(pieces), "".join(pieces)), (qp_lines("\n".join(pieces)), "\n".join(pieces))):
        lines = encoded.split(b"\r\n")
        assert all(len(line) <= 76 for line in lines), max(lines, key=len)
        assert all(not line.endswith((b" ", b"\t")) for line in lines)
        assert b"\n" not in encoded.replace(b"\r\n", b"")
        assert quopri.decodestring(encoded).replace(b"\r\n", b"\n").decode("utf-8") == expected


@pytest.mark.parametrize("value", ["plain", "<script>alert('x')</script>", 'a & "b"', "Zoë", "", "&amp;"])
def test_liquid_escape_is_markupsafe_exactly(value: str) -> None:
    import markupsafe

    from tailormail.content.engines import LANGUAGES

    assert LANGUAGES[".liquid"].escape(value) == str(markupsafe.escape(value))
    assert LANGUAGES[".liquid"].escape(markupsafe.Markup("<b>x</b>")) == "<b>x</b>"


@pytest.mark.parametrize("size", [1, 64, 65, 74, 75, 76, 149, 150, 151, 224, 225, 226, 400])
def test_long_plain_pieces_are_wrapped_and_shared_between_parts(size: int) -> None:
    import quopri

    from tailormail.content.mime import qp_pieces

    link = ("https://t.example/c/" + "Ab0-_" * 100)[:size]
    links: dict[str, bytes] = {}
    first = qp_pieces(['<a href="', link, '">x</a>'], links)
    again = qp_pieces(["(", link, ")"], links)
    for encoded, expected in ((first, f'<a href="{link}">x</a>'), (again, f"({link})")):
        assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
        assert quopri.decodestring(encoded).replace(b"\r\n", b"\n").decode("ascii") == expected
    assert (link in links) == (size > 64)
