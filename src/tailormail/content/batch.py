"""Rendering a send batch against the store: load the people, choose variants, record failures.

This is the entry point journeys and campaigns call.  It reads what the
templates need for all recipients at once (traits, orders, memberships),
evaluates each block variant's rule once for the whole batch, renders, and
stores the template version and every failure with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from tailormail.content.compile import CompiledTemplate
from tailormail.content.context import Recipient
from tailormail.content.render import Envelope, LinkSigner, RenderResult, choose_variants, render_batch, unsigned
from tailormail.store import Store
from tailormail.store import content as content_store
from tailormail.store.profiles import traits_of

MatchingProfiles = Callable[..., set[int]]
"""``segments.evaluate.matching_profiles(conn, rule, *, now_ms, profile_ids=None, settings=None)``."""

Memberships = Callable[[Connection, Sequence[int]], Mapping[int, Iterable[str]]]
"""(connection, profile ids) -> each person's segment names."""

Recommender = Callable[[Connection, Sequence[int]], Mapping[int, list[dict[str, Any]]]]
"""(connection, profile ids) -> each person's recommended products (name, price, url, image)."""


@dataclass
class DataSources:
    """The injected pieces that know about other domains (segments, recommendations, links)."""

    matching_profiles: MatchingProfiles | None = None
    memberships: Memberships | None = None
    known_segments: Sequence[str] = ()
    recommend: Recommender | None = None
    links_for: Callable[[Recipient], dict[str, str]] | None = None
    signer: LinkSigner = unsigned
    settings: Any = None
    purchase_event: str = "purchase"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Addressee:
    """Who a batch goes to: profile, idempotency key and the trigger's payload."""

    profile_id: int
    message_key: str
    event: dict[str, Any] = field(default_factory=dict)


def load_recipients(conn: Connection, addressees: Sequence[Addressee], sources: DataSources) -> list[Recipient]:
    """Everything the templates read about these people, in one pass per kind of data."""
    ids = [a.profile_id for a in addressees]
    traits = traits_of(conn, ids)
    orders = content_store.purchases_of(conn, ids, sources.purchase_event)
    members = sources.memberships(conn, ids) if sources.memberships else {}
    recommended = sources.recommend(conn, ids) if sources.recommend else {}
    recipients = []
    for a in addressees:
        person = traits.get(a.profile_id, {})
        recipient = Recipient(
            profile_id=a.profile_id,
            email=str(person.get("email") or ""),
            message_key=a.message_key,
            traits=person,
            segments=list(members.get(a.profile_id, ())),
            purchase_history=[_order(o) for o in orders.get(a.profile_id, [])],
            recommendations=list(recommended.get(a.profile_id, [])),
            event=a.event,
        )
        recipient.links = sources.links_for(recipient) if sources.links_for else {}
        recipients.append(recipient)
    return recipients


def _order(row: dict[str, Any]) -> dict[str, Any]:
    properties = row["properties"]
    return {
        "order_id": properties.get("order_id") or row["message_id"],
        "ts": row["ts"],
        "revenue": row["revenue"] if row["revenue"] is not None else properties.get("revenue"),
        "products": properties.get("products") or [],
    }


def render_for(
    store: Store,
    compiled: CompiledTemplate,
    addressees: Sequence[Addressee],
    envelope: Envelope,
    sources: DataSources,
    *,
    now_ms: int,
) -> list[RenderResult]:
    """Render a batch for these people, recording the template version and every failure."""
    with store.read() as conn:
        recipients = load_recipients(conn, addressees, sources)
        variants = choose_variants(compiled, [r.profile_id for r in recipients], _evaluator(conn, sources, now_ms))
    results = render_batch(compiled, recipients, envelope, signer=sources.signer, variants=variants)
    with store.begin() as conn:
        content_store.record_template_version(conn, version_row(compiled, now_ms))
        content_store.record_render_failures(
            conn,
            [
                {
                    "template": compiled.name,
                    "content_hash": compiled.digest,
                    "profile_id": r.profile_id,
                    "message_key": r.message_key,
                    "reason": r.error,
                    "failed_at": now_ms,
                }
                for r in results
                if not r.ok
            ],
        )
    return results


def _evaluator(
    conn: Connection, sources: DataSources, now_ms: int
) -> Callable[[dict[str, Any], Sequence[int]], set[int]]:
    match = sources.matching_profiles or _segments_matching_profiles()

    def evaluate(rule: dict[str, Any], profile_ids: Sequence[int]) -> set[int]:
        return set(match(conn, rule, now_ms=now_ms, profile_ids=list(profile_ids), settings=sources.settings))

    return evaluate


def _segments_matching_profiles() -> MatchingProfiles:
    """The segment engine's evaluator (imported late: content depends on segments, not the reverse)."""
    from tailormail.segments.evaluate import matching_profiles  # type: ignore[import-not-found,unused-ignore]

    return matching_profiles  # type: ignore[no-any-return,unused-ignore]


def version_row(compiled: CompiledTemplate, now_ms: int) -> dict[str, Any]:
    """The stored form of a compiled template version."""
    return {
        "template": compiled.name,
        "content_hash": compiled.digest,
        "language": compiled.language,
        "blocks": sorted(compiled.blocks),
        "slots": [s.__dict__ for s in compiled.slots],
        "html_bytes": compiled.html_bytes,
        "compiled_at": now_ms,
    }
