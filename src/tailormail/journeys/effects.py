"""What a journey's send step does for real: render the template for the person, put it in the outbox.

Both happen inside the step's transaction (design decision 5), so the email
exists exactly when the step that decided it committed.  A render error for
the person sends nothing, records why, and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from tailormail.clock import from_ms
from tailormail.config import Settings
from tailormail.content.batch import Addressee, DataSources, Recommender, load_recipients, version_row
from tailormail.content.compile import compile_template
from tailormail.content.context import Recipient
from tailormail.content.render import Envelope, LinkSigner, choose_variants, render_batch
from tailormail.content.rules import segment_evaluator
from tailormail.deliver.outbox import Email, enqueue
from tailormail.journeys import engine as e
from tailormail.journeys import model as m
from tailormail.store import content as content_store

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
        compiled = compile_template(self.settings.workspace, action.template)  # cached by content hash
        profile_id = int(run["profile_id"])
        signer = self.signer_for({action.key: profile_id})
        recommend = self.recommend(now_ms) if self.recommend else None
        sources = DataSources(settings=self.settings, recommend=recommend, links_for=self.links_for, signer=signer)
        recipients = load_recipients(conn, [Addressee(profile_id, action.key, dict(run["trigger"] or {}))], sources)
        variants = {}
        if any(b.variants for b in compiled.blocks.values()):
            variants = choose_variants(compiled, [profile_id], segment_evaluator(conn, self.settings, now_ms))
        envelope = Envelope(
            self.from_address, self.domain, from_ms(now_ms), campaign={"journey": journey.name, "node": action.node}
        )
        (result,) = render_batch(compiled, recipients, envelope, signer=signer, variants=variants)
        content_store.record_template_version(conn, version_row(compiled, now_ms))
        if not result.ok or result.message is None:
            content_store.record_render_failures(
                conn,
                [
                    {
                        "template": compiled.name,
                        "content_hash": compiled.digest,
                        "profile_id": profile_id,
                        "message_key": action.key,
                        "reason": result.error,
                        "failed_at": now_ms,
                    }
                ],
            )
            return
        enqueue(
            conn,
            Email(
                key=action.key,
                to=recipients[0].email,
                mime=result.message,
                kind=journey.kind,
                profile_id=profile_id,
                journey=journey.name,
                node=action.node,
                template=action.template,
                variant=None if action.subject_variant is None else str(action.subject_variant),
            ),
            now_ms=now_ms,
        )

    def webhook(
        self, conn: Connection, journey: m.Journey, run: dict[str, Any], action: e.CallWebhook, now_ms: int
    ) -> None:
        """Webhook steps are validated and logged, but not yet posted (see the README's journeys section)."""
        return None
