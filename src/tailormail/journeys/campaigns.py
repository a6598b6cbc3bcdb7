"""Campaigns: one-off broadcasts of a template to a segment, now or at a scheduled moment.

``schedule`` checks the template (lint errors stop it) and the segment, and
stores the campaign.  When its moment comes, ``resolve_due`` takes the
segment's members at that moment and records each with an arm: a subject
variant (A, B, ...) assigned deterministically per person, or the holdout,
which receives nothing but is kept so analytics can measure lift against it.
``send_due`` then decides a batch of members at a time, in one transaction
per batch: the same send rules as journey steps (``engine.send_gate``:
suppression, unsubscribes, quiet hours, frequency cap), the same rendering
and outbox writing (``OutboxEffects.send_batch``), and the member's new state
commit together, keyed by (campaign, person), so a worker killed mid-batch
decides the batch again and sends nothing twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from tailormail.clock import from_ms, to_ms
from tailormail.config import Settings
from tailormail.content.batch import Addressee
from tailormail.content.lint import lint_workspace
from tailormail.errors import NotFound, ValidationError
from tailormail.journeys import engine as e
from tailormail.journeys import model as m
from tailormail.journeys.effects import OutboxEffects, Tagging
from tailormail.segments.definitions import load_segments
from tailormail.segments.membership import members, refresh
from tailormail.segments.parse import suggest
from tailormail.store import campaigns as q
from tailormail.store import deliver as deliver_q
from tailormail.store import profiles as profile_q

BATCH = 500
"""Members decided per transaction: a killed worker redoes at most this many decisions."""

DAY_MS = 86_400_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,120}$")
ARM_NAMES = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Campaign:
    """What to send to whom, when: the stored form of `campaigns send`."""

    name: str
    template: str
    segment: str
    send_at_ms: int
    subjects: tuple[str, ...] = ()
    """Subject A/B variants (empty: the template's own subject)."""
    holdout: float = 0.0
    """Share of the segment (0 to 0.5) that receives nothing."""
    kind: str = "marketing"

    def split(self) -> m.Split:
        """The arms as a journey split: one per subject variant (or one 'all'), plus the holdout."""
        names = [ARM_NAMES[i] for i in range(len(self.subjects))] or ["all"]
        share = (1.0 - self.holdout) / len(names)
        return m.Split(tuple(m.Arm(name, share, None) for name in names), holdout=self.holdout)

    def subject_of(self, arm: str) -> str | None:
        """The subject line of an arm (None: the template's)."""
        return self.subjects[ARM_NAMES.index(arm)] if self.subjects and arm in ARM_NAMES else None


def message_key(campaign: str, profile_id: int) -> str:
    """The idempotency key of a campaign's email to one person (the Message-ID derives from it)."""
    return f"campaign:{campaign}/profile:{profile_id}"


def parse_holdout(text: str | None) -> float:
    """``10%`` or ``0.1`` -> 0.1; a clear error for anything outside 0-50 %."""
    if text is None or not str(text).strip():
        return 0.0
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValidationError(f"holdout {raw!r} is not a share", field="holdout", hint="e.g. 10%") from None
    if not 0.0 <= value <= 0.5:
        raise ValidationError(f"holdout {raw!r} must be between 0% and 50%", field="holdout", hint="e.g. 10%")
    return value


_RELATIVE = re.compile(r"^\+(\d+)([mhd])$")


def parse_when(text: str | None, now_ms: int, timezone: str) -> int:
    """When to send: empty = now, ``+30m`` / ``+2h`` / ``+1d``, or ISO (workspace timezone unless given)."""
    if text is None or not text.strip():
        return now_ms
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return now_ms + amount * {"m": 60_000, "h": 3_600_000, "d": DAY_MS}[unit]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"at {text!r} is not a date-time", field="at", hint="e.g. 2026-12-01T09:00 or +2h"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=e.zone(timezone))
    return to_ms(moment.astimezone(UTC))


def request(
    template: str,
    segment: str,
    *,
    now_ms: int,
    timezone: str,
    at: str | None = None,
    ab: str | None = None,
    subjects: tuple[str, ...] = (),
    holdout: str | None = None,
    name: str | None = None,
    transactional: bool = False,
) -> Campaign:
    """A campaign from what a person asked for (CLI options or API fields), with clear errors."""
    if ab is not None and ab != "subject":
        raise ValidationError(f"ab {ab!r} is not supported", field="ab", hint="ab: subject")
    if ab == "subject" and len(subjects) < 2:
        raise ValidationError("an A/B test of the subject needs two or more subject lines", field="subject")
    if ab is None and len(subjects) > 1:
        raise ValidationError("several subject lines make an A/B test", field="ab", hint="set ab to subject")
    send_at = parse_when(at, now_ms, timezone)
    return Campaign(
        name=name or f"{template}-{from_ms(send_at).strftime('%Y%m%d-%H%M')}",
        template=template,
        segment=segment,
        send_at_ms=send_at,
        subjects=subjects if ab == "subject" else (),
        holdout=parse_holdout(holdout),
        kind="transactional" if transactional else "marketing",
    )


def validate(settings: Settings, conn: Connection, campaign: Campaign, now_ms: int) -> None:
    """Refuse a campaign that cannot send: a bad name, an unknown segment, a template with lint errors."""
    if not _NAME.match(campaign.name):
        raise ValidationError(
            f"campaign name {campaign.name!r} is not allowed", field="name", hint="letters, digits, _ . : -"
        )
    segments = load_segments(settings)
    if campaign.segment not in segments:
        close = suggest(campaign.segment, list(segments))
        raise NotFound(
            f"no segment named {campaign.segment!r}",
            hint=f"did you mean {close!r}?" if close else "see `segments list`",
        )
    if len(campaign.subjects) == 1:
        raise ValidationError("a subject A/B test needs two or more --subject lines", field="subject")
    if len(campaign.subjects) > len(ARM_NAMES):
        raise ValidationError(f"at most {len(ARM_NAMES)} subject variants", field="subject")
    reports = lint_workspace(settings.workspace, [campaign.template], conn, now_ms)
    if not reports:
        raise NotFound(f"no template named {campaign.template!r}", hint="see templates/ or `lint`")
    errors = [f for r in reports for f in r.errors]
    if errors:
        first = errors[0]
        where = f"{first.file}:{first.line}" if first.line else first.file
        raise ValidationError(
            f"template {campaign.template!r} has {len(errors)} lint error(s); the first, at {where}: {first.message}",
            field="template",
            hint=f"fix them (`tailormail lint {campaign.template}`), then send again",
        )


def schedule(settings: Settings, conn: Connection, campaign: Campaign, now_ms: int) -> None:
    """Check and store a campaign; it is sent when ``send_due`` runs at or after its moment."""
    validate(settings, conn, campaign, now_ms)
    row = {
        "name": campaign.name,
        "template": campaign.template,
        "segment": campaign.segment,
        "kind": campaign.kind,
        "subjects": list(campaign.subjects),
        "holdout": campaign.holdout,
        "send_at": campaign.send_at_ms,
        "status": "scheduled",
        "created_at": now_ms,
    }
    if not q.insert_campaign(conn, row):
        raise ValidationError(f"a campaign named {campaign.name!r} exists", field="name", hint="choose another --name")


def from_row(row: dict[str, Any]) -> Campaign:
    """A stored campaign."""
    return Campaign(
        name=row["name"],
        template=row["template"],
        segment=row["segment"],
        send_at_ms=int(row["send_at"]),
        subjects=tuple(row["subjects"] or ()),
        holdout=float(row["holdout"] or 0.0),
        kind=row["kind"],
    )


def resolve_due(conn: Connection, settings: Settings, now_ms: int) -> int:
    """Take the segment of every campaign whose moment has come; return how many people were recorded.

    The segment is recomputed now (a refresh), so the campaign goes to who is
    in it at send time, not to who was in it at the last recheck.
    """
    recorded = 0
    due = q.due_campaigns(conn, now_ms)
    segments = load_segments(settings) if due else {}
    for row in due:
        if not q.start_sending(conn, row["name"], now_ms):
            continue  # another worker has it
        campaign = from_row(row)
        segment = segments.get(campaign.segment)
        if segment is None:  # deleted since it was scheduled: nobody to send to
            q.set_status(conn, campaign.name, "cancelled", now_ms)
            continue
        refresh(conn, segment, now_ms, settings=settings)
        split = campaign.split()
        rows = []
        for profile_id in sorted(members(conn, campaign.segment)):
            arm = e.assign_arm(f"campaign:{campaign.name}", "send", profile_id, split)
            held = arm is None
            rows.append(
                {
                    "campaign": campaign.name,
                    "profile_id": profile_id,
                    "arm": "holdout" if held else arm.name,  # type: ignore[union-attr]
                    "status": "holdout" if held else "pending",
                    "reason": None,
                    "due_at": campaign.send_at_ms,
                    "outbox_key": None,
                    "decided_at": now_ms if held else None,
                }
            )
        q.add_members(conn, rows)
        recorded += len(rows)
    return recorded


@dataclass
class BatchFacts:
    """The send rules' questions about one person, answered from data loaded for the whole batch."""

    traits: dict[str, Any]
    sent: int
    blocked: bool
    workspace_timezone: str

    def holds(self, rule: Any) -> bool:
        """Campaign sends have no branch rules."""
        raise NotImplementedError

    def timezone(self) -> str:
        """The person's timezone trait, else the workspace's."""
        tz = self.traits.get("timezone")
        return tz if isinstance(tz, str) and tz else self.workspace_timezone

    def trait(self, path: tuple[str, ...]) -> Any:
        """Unused by the send rules."""
        return None

    def marketing_sent_since(self, since_ms: int) -> int:
        """Marketing emails queued or sent to the person in the cap's window (loaded for the batch)."""
        return self.sent

    def suppressed(self) -> bool:
        """The unsubscribed trait, or the address on the suppression list."""
        return self.blocked


@dataclass
class Outcome:
    """What one round of ``send_due`` decided."""

    queued: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    failed: int = 0

    @property
    def decided(self) -> int:
        """Members whose state changed."""
        return self.queued + sum(self.skipped.values()) + self.deferred + self.failed


def send_due(
    conn: Connection,
    effects: OutboxEffects,
    policy: e.SendPolicy,
    now_ms: int,
    *,
    limit: int = BATCH,
    timezone: str = "UTC",
) -> Outcome:
    """Decide up to ``limit`` due members in the caller's transaction: queue, skip, or wait out quiet hours."""
    outcome = Outcome()
    claimed = q.claim_pending(conn, now_ms, limit)
    if not claimed:
        return outcome
    campaigns = {name: q.get_campaign(conn, name) for name in {row["campaign"] for row in claimed}}
    ids = [row["profile_id"] for row in claimed]
    traits = profile_q.traits_of(conn, ids)
    sent = deliver_q.marketing_counts(conn, ids, now_ms - policy.cap_days * DAY_MS)
    emails = {pid: str(t.get("email") or "").strip().lower() for pid, t in traits.items()}
    listed = deliver_q.suppressed_among(conn, [a for a in emails.values() if a])
    to_send: dict[tuple[str, str], list[Addressee]] = {}
    decisions: list[dict[str, Any]] = []
    for row in claimed:
        stored = campaigns[row["campaign"]]
        if stored is None or stored["status"] == "cancelled":
            decisions.append(_decision(row, "skipped", "cancelled", now_ms))
            continue
        pid = row["profile_id"]
        person = traits.get(pid, {})
        blocked = bool(person.get("unsubscribed")) or emails.get(pid, "") in listed
        facts = BatchFacts(person, sent.get(pid, 0), blocked, timezone)
        verdict = e.send_gate(stored["kind"], now_ms, facts, policy)
        if isinstance(verdict, int):
            decisions.append({"campaign": row["campaign"], "profile_id": pid, "due_at": verdict})
            outcome.deferred += 1
        elif verdict is not None:
            decisions.append(_decision(row, "skipped", verdict, now_ms))
            outcome.skipped[verdict] = outcome.skipped.get(verdict, 0) + 1
        else:
            to_send.setdefault((row["campaign"], row["arm"]), []).append(
                Addressee(pid, message_key(row["campaign"], pid))
            )
    for (name, arm), addressees in to_send.items():
        campaign = from_row(campaigns[name])  # type: ignore[arg-type]
        tags = Tagging(kind=campaign.kind, campaign=name, variant=arm if campaign.subjects else None)
        results = effects.send_batch(
            conn, campaign.template, addressees, tags, now_ms, subject=campaign.subject_of(arm)
        )
        for a in addressees:
            reason = results.get(a.message_key)
            row = {"campaign": name, "profile_id": a.profile_id}
            decisions.append(_decision(row, "failed" if reason else "queued", reason, now_ms, a.message_key))
            outcome.failed += bool(reason)
            outcome.queued += not reason
    q.decide(conn, decisions)
    return outcome


def _decision(
    row: dict[str, Any], status: str, reason: str | None, now_ms: int, key: str | None = None
) -> dict[str, Any]:
    return {
        "campaign": row["campaign"],
        "profile_id": row["profile_id"],
        "status": status,
        "reason": reason[:255] if reason else None,
        "outbox_key": key,
        "decided_at": now_ms,
    }


def finish_done(conn: Connection, now_ms: int) -> list[str]:
    """Mark sending campaigns with nobody left pending as done; return their names."""
    sending = q.sending_campaigns(conn)
    left = q.unfinished(conn, sending)
    done = [name for name in sending if name not in left]
    for name in done:
        q.set_status(conn, name, "done", now_ms)
    return done


def cancel(conn: Connection, name: str, now_ms: int) -> None:
    """Stop a scheduled or sending campaign: members not yet decided get nothing."""
    row = q.get_campaign(conn, name)
    if row is None:
        raise NotFound(f"no campaign named {name!r}", hint="see `campaigns list`")
    if row["status"] in ("done", "cancelled"):
        raise ValidationError(f"campaign {name!r} is already {row['status']}", field="name")
    q.set_status(conn, name, "cancelled", now_ms)


def summary(conn: Connection, name: str) -> dict[str, Any]:
    """A campaign with its counts per arm and state, and the outbox's delivery states."""
    row = q.get_campaign(conn, name)
    if row is None:
        raise NotFound(f"no campaign named {name!r}", hint="see `campaigns list`")
    arms: dict[str, dict[str, int]] = {}
    for (arm, status, reason), n in sorted(q.member_counts(conn, name).items(), key=lambda kv: kv[0][:2]):
        label = f"{status} ({reason})" if reason and status == "skipped" else status
        arms.setdefault(arm, {})
        arms[arm][label] = arms[arm].get(label, 0) + n
    return {**row, "arms": arms, "delivery": deliver_q.campaign_delivery(conn, name)}


def totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """Across arms: people per state."""
    out: dict[str, int] = {}
    for states in counts.values():
        for state, n in states.items():
            out[state] = out.get(state, 0) + n
    return out
