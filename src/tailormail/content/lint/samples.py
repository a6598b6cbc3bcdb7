"""Sample people to render templates for: real profiles when there are some, plus built-ins.

Two built-in samples always run: a complete profile and a sparse one that has
only an email address, because the sparse one is what breaks "Hi {{ name }},".
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from tailormail.content.batch import Addressee, DataSources, load_recipients
from tailormail.content.context import Recipient
from tailormail.content.recommend import recommendation_source
from tailormail.store import profiles as profile_q

SAMPLE_LINKS = {
    "unsubscribe": "https://example.invalid/unsubscribe/sample",
    "preferences": "https://example.invalid/preferences/sample",
    "view_in_browser": "https://example.invalid/view/sample",
    "open_pixel": "https://example.invalid/open/sample.gif",
}
"""Stand-in links; lint looks for the unsubscribe one in the rendered HTML."""

SAMPLE_PRODUCTS = [
    {
        "product_id": f"sample-{i}",
        "id": f"sample-{i}",
        "name": name,
        "price": price,
        "category": "sample",
        "url": f"https://example.invalid/p/{i}",
        "image": f"https://example.invalid/p/{i}.jpg",
    }
    for i, (name, price) in enumerate(
        [("Trail shoe", "89.00"), ("Wool socks", "12.50"), ("Rain jacket", "149.00"), ("Water bottle", "19.99")],
        start=1,
    )
]

COMPLETE_TRAITS = {
    "firstName": "Ada",
    "lastName": "Lovelace",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "state": "CA",
    "country": "US",
    "city": "San Francisco",
    "language": "en",
}


@dataclass(frozen=True)
class Sample:
    """A named person to render for."""

    name: str
    recipient: Recipient


def builtin_samples() -> list[Sample]:
    """The complete and the sparse built-in samples."""
    complete = Recipient(
        0,
        "ada@example.com",
        "lint:complete",
        traits=dict(COMPLETE_TRAITS),
        purchase_history=[
            {"order_id": "o-1", "ts": 0, "revenue": 89.0, "products": [{**SAMPLE_PRODUCTS[0], "quantity": 1}]}
        ],
        recommendations=list(SAMPLE_PRODUCTS),
        links=dict(SAMPLE_LINKS),
        user_id="sample-complete",
    )
    sparse = Recipient(
        0,
        "sparse@example.com",
        "lint:sparse",
        traits={"email": "sparse@example.com"},
        recommendations=list(SAMPLE_PRODUCTS),
        links=dict(SAMPLE_LINKS),
        user_id="sample-sparse",
    )
    return [Sample("complete (built-in)", complete), Sample("email only (built-in)", sparse)]


def store_samples(conn: Connection, now_ms: int, *, limit: int = 3, scan: int = 2000) -> list[Sample]:
    """Up to ``limit`` real people with an email: the richest and the sparsest of the first ``scan``."""
    seen = []
    for profile in profile_q.iter_profiles(conn, batch=500):
        if profile["user_id"] and (profile["traits"] or {}).get("email"):
            seen.append(profile)
        if len(seen) >= scan:
            break
    seen.sort(key=lambda p: (-len(p["traits"] or {}), p["id"]))
    chosen = list({p["id"]: p for p in seen[: max(0, limit - 1)] + seen[-1:]}.values())
    sources = DataSources(recommend=recommendation_source(now_ms), links_for=lambda _r: dict(SAMPLE_LINKS))
    addressees = [Addressee(p["id"], f"lint:{p['id']}") for p in chosen]
    recipients = load_recipients(conn, addressees, sources)
    return [Sample(f"user {p['user_id']}", r) for p, r in zip(chosen, recipients, strict=True)]


def observed_traits(conn: Connection, *, scan: int = 5000) -> set[str]:
    """Trait names present on the first ``scan`` profiles: part of the known schema."""
    names: set[str] = set()
    for n, profile in enumerate(profile_q.iter_profiles(conn, batch=1000)):
        names.update((profile["traits"] or {}).keys())
        if n + 1 >= scan:
            break
    return names
