"""Content: 20,000 recipients of a realistic 20 KB email through the per-recipient pipeline.

The email is the preset newsletter's blocks (greeting, hero and loyalty and
regional variants, a 4-product grid, footer) with 12 tracked links (plus the
footer's system links).  Per recipient, exactly what a send does (see
``runtime.journey_effects`` and ``content.batch``): the person's system links
signed by ``track.links.Tracker`` (unsubscribe, preferences, view in browser,
open pixel), render, every tracked link signed by the tracker's click signer
(UTM tags added), MIME assembled (``content.mime``).

Baselines in the same run, on the same recipients:
- naive: render the MJML source with Liquid, then run MJML and CSS inlining
  for every recipient (what "compile once" avoids), then sign and assemble;
- floor: a plain f-string fill of the same compiled output (no template
  engine at all), then the same tracker, signer and MIME code.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import describe
from tailormail.content import Envelope, Recipient, compile_template, render_batch
from tailormail.content.layout import mjml_to_html
from tailormail.content.mime import assemble, message_id_for, qp_pieces
from tailormail.content.parts import SLOT
from tailormail.content.render import choose_variants, unsigned
from tailormail.track.links import CLICK, Tracker, click_url, with_utm
from tailormail.track.signing import verify

N = int(os.environ.get("BENCH_CONTENT_N", "20000"))
NAIVE_N = 200  # the naive pipeline is slow; its rate is measured on fewer recipients
SECRET = "bench-secret"
TEMPLATE = """\
---
subject: "{{ customer.firstName | default: 'Hi' }}, this week's picks for you"
preheader: New arrivals, your recommendations and an offer near you.
from_name: Tailormail Shop
---
{% render 'greeting' %}
{% render 'hero' %}
{% render 'product_grid' %}
<mj-section padding="8px 0"><mj-column>
  <mj-text font-size="20px" font-weight="700">From the journal</mj-text>
  <mj-text>How to care for leather shoes so they last a decade: five steps, ten minutes a month. Clean off
  the dust after every wear with a soft brush, let them dry away from the radiator, use cedar shoe trees,
  condition the leather every few months and rotate two pairs so each gets a day of rest.
  <a href="https://shop.example.com/journal/leather-care">Read the guide</a></mj-text>
</mj-column></mj-section>
{% render 'loyalty_reward' %}
{% render 'regional_offer' %}
{% render 'footer' %}
"""
FIRST = ["Ada", "Grace", "Alan", "Linus", "Zoë", "José", "Mei", "Olu", "Priya", "Sven", "Hana", "Omar"] * 10
STATES = ["CA", "NY", "TX", "WA", "FL", "IL"]


TRACKER = Tracker("https://t.example.com", SECRET, {"utm_source": "tailormail", "utm_medium": "email"})
"""The production link wiring (runtime.journey_effects builds the same): click signer and system links."""


def signer(key: str, slot, url: str) -> str:
    """tailormail.track.links.click_url: the general signing.sign (json.dumps per link)."""
    return click_url("https://t.example.com", SECRET, key, None, slot, with_utm(url, TRACKER.utm))


def workspace() -> Path:
    from tailormail.workspace import init_workspace

    os.environ.setdefault("TAILORMAIL_DATABASE_URL", "sqlite:///" + tempfile.mktemp(suffix=".db"))
    root = Path(tempfile.mkdtemp()) / "ws"
    init_workspace(root)
    (root / "templates" / "bench.liquid").write_text(TEMPLATE, encoding="utf-8")
    return root


def recipients(n: int, segments: list[str]) -> list[Recipient]:
    rng = random.Random(7)
    catalog = [
        {"name": f"Product {i}", "price": f"{rng.randint(9, 199)}.00", "url": f"https://shop.example.com/p/{i}",
         "image": f"https://img.example.com/p/{i}.jpg"}
        for i in range(300)
    ]  # fmt: skip
    people = []
    for pid in range(1, n + 1):
        first = rng.choice(FIRST) + ("" if rng.random() < 0.7 else str(pid))  # some names are unique
        traits = {"firstName": first, "lastName": "Doe", "state": rng.choice(STATES), "country": "US"}
        links = {k: f"https://t.example.com/{k}/{pid}" for k in ("unsubscribe", "preferences", "view_in_browser")}
        people.append(
            Recipient(
                pid, f"p{pid}@example.com", f"send-1:{pid}", traits=traits, recommendations=rng.sample(catalog, 4),
                links=links, purchase_history=[{}] * rng.randint(0, 4),
                segments=rng.sample(segments, rng.randint(0, min(3, len(segments)))),
            )
        )  # fmt: skip
    return people


def variants_for(compiled, people: list[Recipient]) -> dict:
    """Variant choices as the segment engine would make them (synthetic rules: by state and purchases)."""
    by_id = {p.profile_id: p for p in people}

    def evaluate(rule, ids):
        text = repr(rule)
        if "CA" in text:
            return {i for i in ids if by_id[i].traits["state"] == "CA"}
        if "at_least': 3" in text:
            return {i for i in ids if len(by_id[i].purchase_history) >= 3}
        if "$purchase" in text:
            return {i for i in ids if by_id[i].purchase_history}
        if "active_buyers" in text:
            return {i for i in ids if i % 5 == 0}
        if "lapsed" in text:
            return {i for i in ids if i % 7 == 0}
        return set()

    return choose_variants(compiled, [p.profile_id for p in people], evaluate)


def naive(root: Path, compiled, people: list[Recipient], variants: dict, envelope: Envelope) -> None:
    """MJML and CSS inlining per recipient: render the MJML source with Liquid first, then lay it out."""
    from liquid import Environment

    from tailormail.content.blocks import expand
    from tailormail.content.context import build_context
    from tailormail.content.templates import load_block, load_layout, load_template
    from tailormail.content.text import html_to_text

    source = load_template(root, "bench")
    body = expand(source.body, source.language, lambda n: load_block(root, n, source.language), "bench", {})
    layout, _ = load_layout(root, "default")
    document = layout.replace("[[content]]", body).replace("[[preheader]]", source.preheader)
    env = Environment(autoescape=True)
    mjml_template = env.from_string(document.replace("[[subject]]", source.subject))
    subject = env.from_string(source.subject)
    for person in people:
        person.links = TRACKER.links_for(person)
        context = build_context(person, campaign={}, variant=variants.get(person.profile_id))
        html = mjml_to_html(mjml_template.render(**context), "naive")
        html = _sign_hrefs(html, person.message_key, person.profile_id)
        text = html_to_text(html)
        _mime(person, subject.render(**context), text, html, envelope)


def _sign_hrefs(html: str, key: str, profile_id: int) -> str:
    import re

    sign_link = TRACKER.signer({key: profile_id})

    count = iter(range(1000))

    def one(m):
        url = m.group(1)
        if url.startswith("https://t.example.com/"):
            return m.group(0)
        return 'href="' + sign_link(key, _Slot(next(count)), url) + '"'

    return re.sub(r'href="(https?://[^"]*)"', one, html)


def _mime(person: Recipient, subject: str, text: str, html: str, envelope: Envelope) -> bytes:
    return assemble(
        sender=("Tailormail Shop", envelope.from_address), to=person.email, subject=subject, text=text, html=html,
        message_id=message_id_for(person.message_key, envelope.domain), date=envelope.date,
    )  # fmt: skip


def floor(people: list[Recipient], envelope: Envelope) -> None:
    """The same-sized output filled by f-strings (no template engine), then the same signer and MIME code."""
    import html as html_mod

    for first in range(0, len(people), 1000):
        batch = people[first : first + 1000]
        sign_link = TRACKER.signer({r.message_key: r.profile_id for r in batch})
        for person in batch:
            person.links = TRACKER.links_for(person)
            _floor_one(person, envelope, sign_link, html_mod.escape)


def _floor_one(person: Recipient, envelope: Envelope, sign_link, escape) -> None:
    key, recs = person.message_key, person.recommendations
    name = escape(person.traits["firstName"])
    signed = [sign_link(key, _S, r["url"]) for r in recs]  # image and name link, in HTML and text
    cells = [
        f'<td><a href="{url}"><img src="{r["image"]}" alt="{r["name"]}"></a>'
        f'<a href="{url}">{r["name"]}</a> ${r["price"]}</td>'
        for r, url in zip(recs, signed, strict=True)
    ]
    links = [sign_link(key, _S, f"https://shop.example.com/x/{i}") for i in range(4)]
    hero = _HERO.format(*links[:2])
    rest = _REST.format(*links[2:], person.links["unsubscribe"])
    html = [_HEAD, f"<p>Hi {name},</p>", hero, "<table><tr>", *cells, "</tr></table>", rest]
    first = person.traits["firstName"]
    text = f"Hi {first},\n{_TEXT}\n" + "\n".join(f"{r['name']} ({url})" for r, url in zip(recs, signed, strict=True))
    assemble(
        sender=("Tailormail Shop", envelope.from_address), to=person.email, subject=f"{first}, picks for you",
        text=text, html=qp_pieces(html), message_id=message_id_for(key, envelope.domain),
        date=envelope.date,
    )  # fmt: skip


class _Slot:
    """A link slot for the baselines (id, block, position), as content's LinkSlot has."""

    def __init__(self, slot_id: int, block: str | None = None) -> None:
        self.id, self.block, self.position = slot_id, block, slot_id + 1


_S = _Slot(0, "product_grid")
_HEAD = "x" * 14000  # the static part of the compiled email (set from the real skeleton in main)
_HERO = '<a href="{}">hero</a><a href="{}">Shop</a>'
_REST = '<a href="{}">offer</a><a href="{}">rewards</a><a href="{}">unsubscribe</a>' + "y" * 2000
_TEXT = "z" * 3000


def in_batches(
    compiled, people: list[Recipient], envelope: Envelope, variants: dict, *, sign=True
) -> tuple[Timing, int]:
    """Time to render everyone in send batches of 1,000 (results dropped as a sender would), failures.

    Per batch and per person exactly what a send does (content.batch.load_recipients and
    journeys.effects): the tracker's click signer for the batch, each person's system links
    (unsubscribe, preferences, view, open pixel: four signed tokens), then render_batch.
    """
    failures = 0

    def run() -> None:
        nonlocal failures
        for first in range(0, len(people), 1000):
            batch = people[first : first + 1000]
            sign_link = TRACKER.signer({r.message_key: r.profile_id for r in batch}) if sign else unsigned
            for person in batch:
                person.links = TRACKER.links_for(person) if sign else _UNSIGNED_LINKS
            results = render_batch(compiled, batch, envelope, signer=sign_link, variants=variants)
            failures += sum(not r.ok for r in results)

    return timed(run), failures


_UNSIGNED_LINKS = {
    k: f"https://t.example.com/{k}/x" for k in ("unsubscribe", "preferences", "view_in_browser", "open_pixel")
}


class Timing:
    """Wall-clock and CPU seconds of one run (CPU time is what one core spent, whatever the machine's load)."""

    def __init__(self, wall: float, cpu: float) -> None:
        self.wall, self.cpu = wall, cpu

    def rates(self, n: int) -> str:
        return f"{n / self.cpu:8,.0f} msg per CPU-second ({n / self.wall:,.0f} msg/s wall clock)"


def timed(fn) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def main() -> None:
    global _HEAD, _TEXT
    root = workspace()
    # As a send does: every segment of the workspace is known (a flag per name), and each
    # person is a member of a few.
    segments = sorted(path.stem for path in (root / "segments").glob("*.y*ml"))
    envelope = Envelope(
        "shop@example.com", "mail.example.com", datetime(2026, 3, 2, tzinfo=UTC), known_segments=segments
    )
    compiled = compile_template(root, "bench")
    people = recipients(N, segments)
    variants = variants_for(compiled, people)
    for person in people[:50]:
        person.links = TRACKER.links_for(person)
    sample = render_batch(
        compiled, people[:50], envelope, signer=TRACKER.signer({p.message_key: p.profile_id for p in people}),
        variants=variants,
    )  # fmt: skip
    html_sizes = [len(r.message or b"") for r in sample]
    one = sample[0]
    import email
    import email.policy

    msg = email.message_from_bytes(one.message, policy=email.policy.default)
    html_part = msg.get_body(("html",)).get_content()
    tracked = sum(1 for m in SLOT.finditer(compiled.html.source) if compiled.slots[int(m.group(1))].kind == "tracked")
    _HEAD = html_part[: max(0, len(html_part) - 4000)]
    links_out = html_part.count("https://t.example.com/c/")
    _TEXT = msg.get_body(("plain",)).get_content()[:-400]

    # The production signer's compact tokens carry what the general track.links.click_url carries.
    general = click_url("https://t.example.com", SECRET, "k", 7, _S, with_utm("https://x.example/é?a=1", TRACKER.utm))
    compact = TRACKER.signer({"k": 7})("k", _S, "https://x.example/é?a=1")
    assert verify(SECRET, CLICK, compact.rsplit("/", 1)[1]) == verify(SECRET, CLICK, general.rsplit("/", 1)[1])

    # Warm up as a running worker is (compiled caches, the tracker's link cache) on other messages.
    warm = recipients(1000, segments)
    for person in warm:
        person.message_key = "warm-up:" + person.message_key
    in_batches(compiled, warm, envelope, variants)
    in_batches(compiled, warm, envelope, variants, sign=False)
    ours, failures = in_batches(compiled, people, envelope, variants)
    unsigned_time, _ = in_batches(compiled, people, envelope, variants, sign=False)
    naive_time = timed(lambda: naive(root, compiled, people[:NAIVE_N], variants, envelope))
    floor_time = timed(lambda: floor(people, envelope))

    rate, naive_rate, floor_rate = N / ours.cpu, NAIVE_N / naive_time.cpu, N / floor_time.cpu
    text_kb = len(msg.get_body(("plain",)).get_content()) / 1024
    mime_kb = sum(html_sizes) / len(html_sizes) / 1024
    system = len(compiled.slots) - tracked
    print(describe())
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"email: {len(html_part) / 1024:.1f} KB HTML, {text_kb:.1f} KB text, {mime_kb:.1f} KB MIME; {links_out} links"
    )
    print(f"template: {tracked} tracked + {system} system link slots (all variants); failures: {failures}")
    print(f"ours, production path (track.links.Tracker): {ours.rates(N)}")
    print(f"ours, links left unsigned (signing's share): {unsigned_time.rates(N)}")
    print(f"naive, MJML + CSS inlining each time:        {naive_time.rates(NAIVE_N)}; ours: {rate / naive_rate:.0f}x")
    print(f"floor, f-string fill, same signer+MIME:      {floor_time.rates(N)}; ours: {rate / floor_rate:.2f}x")
    print(f"per message: ours {1e6 / rate:.0f} µs of CPU, floor {1e6 / floor_rate:.0f} µs")
    print(f"target >= 5,000 msg/s on one core: {'met' if rate >= 5000 else 'NOT met'} ({rate:,.0f} per CPU-second)")


if __name__ == "__main__":
    main()
