"""Rendering a send batch against the store: load the people, choose variants, record failures.

This is the entry point journeys and campaigns call.  It reads what the
templates need for all recipients at once (traits, orders, memberships),
evaluates each block variant's rule once for the whole batch, renders, and
stores the template version and every failure with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection

from tailormail.config import Settings
from tailormail.content import rules
from tailormail.content.compile import CompiledTemplate
from tailormail.content.context import Recipient
from tailormail.content.render import (
    Envelope,
    LinkSigner,
    RenderResult,
    RuleEvaluator,
    choose_variants,
    render_batch,
    unsigned,
)
from tailormail.errors import ConfigError
from tailormail.segments.definitions import load_segments
from tailormail.store import Store
from tailormail.store import content as content_store
from tailormail.store.profiles import traits_of

EvaluatorFactory = Callable[[Connection, int], RuleEvaluator]
"""(connection, now_ms) -> a RuleEvaluator for one batch."""

Memberships = Callable[[Connection, Sequence[int]], Mapping[int, Iterable[str]]]
"""(connection, profile ids) -> each person's segment names."""

Recommender = Callable[[Connection, Sequence[int]], Mapping[int, list[dict[str, Any]]]]
"""(connection, profile ids) -> each person's recommended products (name, price, url, image)."""


@dataclass
class DataSources:
    """The injected pieces that know about other domains (segments, recommendations, links)."""

    settings: Settings | None = None
    """The workspace settings: segment definitions and event names for variant rules."""
    rule_evaluator: EvaluatorFactory | None = None
    """Default: the segment engine (``rules.segment_evaluator``)."""
    memberships: Memberships | None = rules.memberships
    known_segments: Sequence[str] | None = None
    """Default: every segment defined in the workspace."""
    recommend: Recommender | None = None
    links_for: Callable[[Recipient], dict[str, str]] | None = None
    signer: LinkSigner = unsigned
    purchase_event: str | None = None
    """Default: the workspace's [events] purchase name."""


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
    purchase = sources.purchase_event or (sources.settings.events.purchase if sources.settings else "purchase")
    orders = content_store.purchases_of(conn, ids, purchase)
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
        needs_rules = any(b.variants for b in compiled.blocks.values())
        ids = [r.profile_id for r in recipients]
        variants = choose_variants(compiled, ids, _evaluator(conn, sources, now_ms)) if needs_rules else {}
    if not envelope.known_segments:
        envelope = replace(envelope, known_segments=tuple(_known_segments(sources)))
    results = render_batch(compiled, recipients, envelope, signer=sources.signer, variants=variants)
    with store.begin() as conn:
        record_outcome(conn, compiled, results, now_ms)
    return results


def record_outcome(conn: Connection, compiled: CompiledTemplate, results: Sequence[RenderResult], now_ms: int) -> None:
    """Record the template version used and why each failed recipient got nothing (fail closed, say why)."""
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
            if not r.ok or r.message is None
        ],
    )


def _evaluator(conn: Connection, sources: DataSources, now_ms: int) -> RuleEvaluator:
    if sources.rule_evaluator is not None:
        return sources.rule_evaluator(conn, now_ms)
    if sources.settings is None:
        raise ConfigError("variant rules need the workspace settings", hint="pass DataSources(settings=...)")
    return rules.segment_evaluator(conn, sources.settings, now_ms)


def _known_segments(sources: DataSources) -> Sequence[str]:
    if sources.known_segments is not None:
        return sources.known_segments
    return sorted(load_segments(sources.settings)) if sources.settings else ()


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
