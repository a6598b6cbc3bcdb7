"""Personalize at the leaves: per recipient only render, link signing and MIME.

``render_batch`` is pure: it takes a compiled template, the recipients and the
injected pieces (link signer, clock time, variant choices) and returns one
``RenderResult`` per recipient: the message bytes, or why there is none.  A
failure for one person (a template error, a required value that is empty, a
bad address) never stops the others: it fails closed for that person only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tailormail.content.blocks import variant_flag
from tailormail.content.compile import CompiledTemplate, LinkSlot
from tailormail.content.context import Recipient, build_context
from tailormail.content.mime import assemble, message_id_for, qp_pieces

_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n){2,}")
LinkSigner = Callable[[str, LinkSlot, str], str]
"""(message key, slot, the link's URL for this person) -> the tracked URL to put in the mail."""

RuleEvaluator = Callable[[dict[str, Any], Sequence[int]], set[int]]
"""(segment rule, profile ids) -> the ids the rule matches (one call per rule for a whole batch)."""


def unsigned(_key: str, _slot: LinkSlot, url: str) -> str:
    """A link signer that leaves URLs as they are (previews, tests of other parts)."""
    return url


@dataclass(frozen=True)
class RenderResult:
    """One recipient's outcome: the message, or the reason there is none."""

    profile_id: int
    message_key: str
    message_id: str
    message: bytes | None = None
    subject: str = ""
    error: str | None = None
    links: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when a message was produced."""
        return self.message is not None


@dataclass(frozen=True)
class Envelope:
    """What every mail of a batch shares: sender, Message-ID domain, time, campaign data."""

    from_address: str
    domain: str
    date: datetime
    campaign: Mapping[str, Any] = field(default_factory=dict)
    known_segments: Sequence[str] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    subject: str | None = None
    """A subject line that replaces the template's (a journey's subject A/B variant)."""


def choose_variants(
    compiled: CompiledTemplate, profile_ids: Sequence[int], evaluate: RuleEvaluator
) -> dict[int, dict[str, Any]]:
    """The variant of every block for every person: one rule evaluation per variant, for all at once."""
    chosen: dict[int, dict[str, Any]] = {pid: {} for pid in profile_ids}
    for block in compiled.blocks.values():
        undecided = set(profile_ids)
        for variant in block.variants:
            if not undecided:
                break
            matched = evaluate(variant.rule, sorted(undecided)) & undecided
            for pid in matched:
                chosen[pid][block.name] = variant.name
                chosen[pid][variant_flag(block.name, variant.name)] = True
            undecided -= matched
        for pid in undecided:
            chosen[pid][block.name] = "default"
    return chosen


def render_batch(
    compiled: CompiledTemplate,
    recipients: Iterable[Recipient],
    envelope: Envelope,
    *,
    signer: LinkSigner = unsigned,
    variants: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[RenderResult]:
    """Render every recipient; failures are returned per person, never raised."""
    return [
        render_one(compiled, r, envelope, signer=signer, variant=(variants or {}).get(r.profile_id)) for r in recipients
    ]


def render_one(
    compiled: CompiledTemplate,
    recipient: Recipient,
    envelope: Envelope,
    *,
    signer: LinkSigner = unsigned,
    variant: Mapping[str, Any] | None = None,
) -> RenderResult:
    """Render one recipient's mail (fails closed: an error becomes the result's reason)."""
    message_id = message_id_for(recipient.message_key, envelope.domain)
    try:
        if not recipient.email or "@" not in recipient.email:
            raise RenderFailure("no valid email address")
        context = build_context(
            recipient, campaign=envelope.campaign, known_segments=envelope.known_segments, variant=variant
        )
        _check_required(compiled, context)
        subject = " ".join((envelope.subject or compiled.subject.render(context)).split())
        if not subject:
            raise RenderFailure("the subject renders empty")
        links: dict[tuple[int, str], str] = {}
        sign = _slot_signer(compiled.slots, recipient.message_key, signer, links)
        html_pieces: list[str] = []
        compiled.html.pieces(context, sign, html_pieces)
        text_pieces: list[str] = []
        compiled.text.pieces(context, sign, text_pieces)
        encoded_links: dict[str, bytes] = {}  # the same signed links are in both parts
        body_text = text_body(text_pieces, encoded_links)
        message = assemble(
            sender=(compiled.from_name or envelope.campaign.get("from_name", ""), envelope.from_address),
            to=recipient.email,
            subject=subject,
            text=body_text,
            html=qp_pieces(html_pieces, encoded_links),
            message_id=message_id,
            date=envelope.date,
            headers=envelope.headers,
        )
    except Exception as exc:  # any failure is this recipient's alone: record it, go on
        return RenderResult(recipient.profile_id, recipient.message_key, message_id, error=_reason(exc))
    return RenderResult(
        recipient.profile_id, recipient.message_key, message_id, message, subject,
        links={k[0]: v for k, v in links.items()},
    )  # fmt: skip


class RenderFailure(Exception):
    """A recipient cannot get this mail (the reason is recorded, the batch goes on)."""


def _check_required(compiled: CompiledTemplate, context: dict[str, Any]) -> None:
    for path in compiled.required:
        value: Any = context
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if _is_empty(value):
            raise RenderFailure(f"required value {path} is empty")


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | dict) and not value)


def text_body(pieces: list[str], links: dict[str, bytes] | None = None) -> str | bytes:
    """The plain-text part from its pieces, runs of blank lines cut to one: encoded, or as text to encode.

    Empty variants leave runs of blank lines where their neighbours' line ends
    meet.  Cutting those runs at the pieces' edges keeps the pieces, so the
    static text's cached encoding is reused and only per-person values (links)
    are encoded; a run that holds spaces or lies inside a piece is left to the
    regular expression over the joined text (the result is the same).
    """
    cut = cut_blank_runs(pieces)
    joined = "".join(cut)
    if "\n\n\n" in joined or "\n " in joined or "\n\t" in joined:
        return _BLANK_LINES.sub("\n\n", "".join(pieces))
    return qp_pieces(cut, links)


def cut_blank_runs(pieces: list[str]) -> list[str]:
    """The pieces with runs of 3+ newlines across their edges cut to 2 (runs inside a piece are kept)."""
    out: list[str] = []
    run = 0  # newlines ending the output so far
    for piece in pieces:
        if not piece:
            continue
        if run and piece[0] == "\n":
            lead = len(piece) - len(piece.lstrip("\n"))
            if run + lead > 2:
                piece = piece[lead - max(0, 2 - run) :]
                if not piece:
                    continue
        if piece[-1] == "\n":
            body = piece.rstrip("\n")
            run = (run if not body else 0) + len(piece) - len(body)
        else:
            run = 0
        out.append(piece)
    return out


def _slot_signer(
    slots: list[LinkSlot], key: str, signer: LinkSigner, cache: dict[tuple[int, str], str]
) -> Callable[[int, str], str]:
    def sign(slot_id: int, url: str) -> str:
        found = cache.get((slot_id, url))
        if found is None:
            slot = slots[slot_id]
            found = (
                url if slot.kind == "system" or not url.startswith(("http://", "https://")) else signer(key, slot, url)
            )
            cache[(slot_id, url)] = found
        return found

    return sign


def _reason(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if isinstance(exc, RenderFailure) else f"{exc.__class__.__name__}: {text}"
