"""Sample people to render templates for: real profiles when there are some, else built-ins.

Two built-in samples always run: a complete profile and a sparse one that has
only an email address, because the sparse one is what breaks "Hi {{ name }},".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from tailormail.store import profiles as profile_q

SAMPLE_LINKS = {
    "unsubscribe": "https://example.invalid/unsubscribe/sample",
    "preferences": "https://example.invalid/preferences/sample",
    "view_in_browser": "https://example.invalid/view/sample",
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
        [("Trail shoe", 89.0), ("Wool socks", 12.5), ("Rain jacket", 149.0), ("Water bottle", 19.99)], start=1
    )
]

COMPLETE_TRAITS = {
    "firstName": "Ada",
    "lastName": "Lovelace",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "location": "California",
    "country": "US",
    "state": "CA",
    "city": "San Francisco",
    "language": "en",
}


@dataclass(frozen=True)
class Sample:
    """A named person and the data a template sees for them."""

    name: str
    context: dict[str, Any]


def context_for(
    traits: dict[str, Any], *, user_id: str | None, recommendations: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The template data for one person (the names templates use, see README)."""
    recs = list(SAMPLE_PRODUCTS if recommendations is None else recommendations)
    customer = {**traits, "user_id": user_id, "recommendations": recs, "purchase_history": []}
    return {
        "customer": customer,
        "user": customer,
        "segment": {},
        "predicted": dict(traits.get("predicted") or {}),
        "purchase_history": [],
        "recommendations": recs,
        "event": {},
        "campaign": {"name": "lint"},
        "links": dict(SAMPLE_LINKS),
    }


def builtin_samples() -> list[Sample]:
    """The complete and the sparse built-in samples."""
    return [
        Sample("complete (built-in)", context_for(COMPLETE_TRAITS, user_id="sample-complete")),
        Sample("email only (built-in)", context_for({"email": "sparse@example.com"}, user_id="sample-sparse")),
    ]


def store_samples(conn: Connection, *, limit: int = 3, scan: int = 2000) -> list[Sample]:
    """Up to ``limit`` real identified profiles: the richest and sparsest of the first ``scan``."""
    seen: list[dict[str, Any]] = []
    for profile in profile_q.iter_profiles(conn, batch=500):
        if profile["user_id"]:
            seen.append(profile)
        if len(seen) >= scan:
            break
    seen.sort(key=lambda p: (-len(p["traits"] or {}), p["id"]))
    chosen = seen[: max(0, limit - 1)] + seen[-1:] if seen else []
    unique = {p["id"]: p for p in chosen}.values()
    return [Sample(f"user {p['user_id']}", context_for(dict(p["traits"] or {}), user_id=p["user_id"])) for p in unique]


def observed_traits(conn: Connection, *, scan: int = 5000) -> set[str]:
    """Trait names present on the first ``scan`` profiles: part of the known schema."""
    names: set[str] = set()
    for n, profile in enumerate(profile_q.iter_profiles(conn, batch=1000)):
        names.update((profile["traits"] or {}).keys())
        if n + 1 >= scan:
            break
    return names
