"""What a journey's send step does for real: render the template for the person, put it in the outbox.

Both happen inside the step's transaction (design decision 5), so the email
exists exactly when the step that decided it committed.  A render error for
the person sends nothing, records why, and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from tailormail.clock import from_ms
from tailormail.config import Settings
from tailormail.content.batch import Addressee, DataSources, Recommender, load_recipients, record_outcome
from tailormail.content.compile import compile_template
from tailormail.content.context import Recipient
from tailormail.content.render import Envelope, LinkSigner, choose_variants, render_batch
from tailormail.content.rules import segment_evaluator
from tailormail.deliver.outbox import Email, enqueue_many
from tailormail.deliver.service import finisher_for
from tailormail.journeys import engine as e
from tailormail.journeys import model as m
from tailormail.store import profiles as profile_store
from tailormail.store import webhooks as webhook_store


@dataclass(frozen=True)
class Tagging:
    """What the outbox rows of a batch say about where they came from (for analytics)."""

    kind: str = "marketing"
    campaign: str | None = None
    journey: str | None = None
    node: str | None = None
    variant: str | None = None

    def envelope(self) -> dict[str, str]:
        """The campaign data templates and tracked links see."""
        if self.campaign:
            return {"campaign": self.campaign}
        return {"journey": self.journey or "", "node": self.node or ""}


SignerFactory = Callable[[dict[str, int | None]], LinkSigner]
"""(message key -> profile id) -> the link signer for those messages."""


@dataclass
class OutboxEffects:
    """Journey side effects written to the outbox (email) in the step's own transaction."""

    settings: Settings
    signer_for: SignerFactory
    links_for: Callable[[Recipient], dict[str, str]]
    from_address: str
    domain: str
    recommend: Callable[[int], Recommender] | None = None
    """now_ms -> the recommendation source at that moment."""

    def send(self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.SendEmail, now_ms: int) -> None:
        """Render ``action.template`` for the run's person and enqueue it, or record why not."""
        self.send_many(conn, journey, [(run, action)], now_ms)

    def send_many(
        self, conn: Connection, journey: m.Journey, items: Sequence[tuple[dict[str, Any], e.SendEmail]], now_ms: int
    ) -> None:
        """One send node's emails for many runs (same template and subject variant) as one render batch."""
        action = items[0][1]
        node = journey.nodes.get(action.node)
        subjects = node.subject_variants if isinstance(node, m.Send) else ()
        subject = subjects[action.subject_variant] if action.subject_variant is not None and subjects else None
        addressees = [Addressee(int(run["profile_id"]), a.key, dict(run["trigger"] or {})) for run, a in items]
        self.send_batch(
            conn,
            action.template,
            addressees,
            Tagging(
                kind=journey.kind,
                journey=journey.name,
                node=action.node,
                variant=None if action.subject_variant is None else str(action.subject_variant),
            ),
            now_ms,
            subject=subject,
        )

    def send_batch(
        self,
        conn: Connection,
        template: str,
        addressees: Sequence[Addressee],
        tags: Tagging,
        now_ms: int,
        *,
        subject: str | None = None,
    ) -> dict[str, str | None]:
        """Render a template for many people and enqueue what rendered; return key -> None or why it failed.

        Journey steps call this for one person, campaigns for a batch: both put
        mail in the outbox on the caller's connection, inside its transaction.
        """
        compiled = compile_template(self.settings.workspace, template)  # cached by content hash
        ids = [a.profile_id for a in addressees]
        signer = self.signer_for({a.message_key: a.profile_id for a in addressees})
        recommend = self.recommend(now_ms) if self.recommend else None
        sources = DataSources(settings=self.settings, recommend=recommend, links_for=self.links_for, signer=signer)
        recipients = load_recipients(conn, addressees, sources)
        variants = {}
        if any(b.variants for b in compiled.blocks.values()):
            variants = choose_variants(compiled, ids, segment_evaluator(conn, self.settings, now_ms))
        envelope = Envelope(self.from_address, self.domain, from_ms(now_ms), campaign=tags.envelope(), subject=subject)
        results = render_batch(compiled, recipients, envelope, signer=signer, variants=variants)
        record_outcome(conn, compiled, results, now_ms)
        emails = [
            Email(
                key=recipient.message_key,
                to=recipient.email,
                mime=result.message,
                kind=tags.kind,
                profile_id=recipient.profile_id,
                campaign=tags.campaign,
                journey=tags.journey,
                node=tags.node,
                template=template,
                variant=tags.variant,
            )
            for recipient, result in zip(recipients, results, strict=True)
            if result.ok and result.message is not None
        ]
        enqueue_many(conn, emails, now_ms=now_ms, finish=finisher_for(self.settings))
        return {
            r.message_key: (r.error or "render failed") if (not r.ok or r.message is None) else None for r in results
        }

    def webhook(
        self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.CallWebhook, now_ms: int
    ) -> None:
        """Queue the POST in the step's transaction; the worker posts it afterwards (``journeys.webhooks``)."""
        profile_id = int(run["profile_id"])
        person = profile_store.get_profile(conn, profile_id=profile_id)
        payload = {
            "journey": journey.name,
            "node": action.node,
            "run_id": run["id"],
            "idempotency_key": action.key,
            "profile": {
                "id": profile_id,
                "user_id": person["user_id"] if person else None,
                "traits": person["traits"] if person else {},
            },
            "trigger": dict(run["trigger"] or {}),
            "at": from_ms(now_ms).isoformat(),
        }
        webhook_store.enqueue(
            conn,
            {
                "idempotency_key": action.key,
                "url": action.url,
                "payload": payload,
                "journey": journey.name,
                "node": action.node,
                "profile_id": profile_id,
                "status": "queued",
                "attempts": 0,
                "next_attempt_at": now_ms,
                "created_at": now_ms,
                "updated_at": now_ms,
            },
        )
