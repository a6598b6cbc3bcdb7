"""What a tracking hit does: verify its token, record an event through ingest, answer.

Opens, clicks and unsubscribes become ordinary events (``email_opened``,
``email_clicked``, ``unsubscribed``) so segments and journeys can use them.
A forged or edited token raises BadToken; the adapter answers 404.
"""

from __future__ import annotations

import email
import hashlib
import logging
from dataclasses import dataclass
from email.message import Message as MimeMessage
from typing import Any

from tailormail.clock import from_ms, to_ms
from tailormail.errors import NotFound
from tailormail.ingest.messages import Message
from tailormail.runtime import Runtime
from tailormail.store import analytics as analytics_q
from tailormail.store import deliver as outbox_q
from tailormail.store import profiles as profile_q
from tailormail.store.segments import user_ids
from tailormail.track import detect
from tailormail.track.links import CLICK, OPEN, VIEW
from tailormail.track.settings import TrackSettings, track_settings
from tailormail.track.signing import BadToken, verify

UNSUBSCRIBE = "unsubscribe"
log = logging.getLogger("tailormail.track")

MESSAGE_FIELDS = ("campaign", "journey", "node", "template", "variant")
"""Outbox columns copied onto every tracking event, so metrics can group by them."""


@dataclass(frozen=True)
class Visitor:
    """Who made the request, as far as HTTP tells."""

    user_agent: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class Hit:
    """A verified open or click waiting to be recorded."""

    name: str
    payload: dict[str, Any]
    extra: dict[str, Any]
    visitor: Visitor
    token: str
    at_ms: int


def open_hit(runtime: Runtime, token: str, visitor: Visitor) -> Hit:
    """Verify a pixel token; the open to record (raises BadToken)."""
    payload = _verify(runtime, OPEN, token)
    return Hit("email_opened", payload, {}, visitor, token, to_ms(runtime.clock.now()))


def click_hit(runtime: Runtime, token: str, visitor: Visitor) -> tuple[Hit, str]:
    """Verify a click token; the click to record and the URL that was in the email (raises BadToken)."""
    payload = _verify(runtime, CLICK, token)
    link = {"link_id": payload.get("l"), "block": payload.get("b"), "position": payload.get("i"), "url": payload["u"]}
    return Hit("email_clicked", payload, link, visitor, token, to_ms(runtime.clock.now())), str(payload["u"])


def record_open(runtime: Runtime, token: str, visitor: Visitor) -> None:
    """Record an open of the email a pixel token names."""
    record_hits(runtime, [open_hit(runtime, token, visitor)])


def record_click(runtime: Runtime, token: str, visitor: Visitor) -> str:
    """Record a click and return the URL that was in the email (the only place we redirect to)."""
    hit, url = click_hit(runtime, token, visitor)
    record_hits(runtime, [hit])
    return url


def record_hits(runtime: Runtime, batch: list[Hit]) -> int:
    """Record verified hits as events through ingest, in one call; return how many were recorded."""
    if not batch:
        return 0
    settings = track_settings(runtime.settings)
    with runtime.store.read() as conn:
        rows = analytics_q.sends_by_key(conn, {str(h.payload["k"]) for h in batch})
        profile_ids = {h.payload.get("p") or (rows.get(str(h.payload["k"])) or {}).get("profile_id") for h in batch}
        users = user_ids(conn, {p for p in profile_ids if isinstance(p, int)})
    payloads: list[Message] = []
    for hit in batch:
        key = str(hit.payload["k"])
        row = rows.get(key)
        user_id = users.get(hit.payload.get("p") or (row or {}).get("profile_id"))  # type: ignore[arg-type]
        if user_id is None:
            log.info("%s for %s: the person is gone (erased); not recorded", hit.name, key)
            continue
        payloads.append(_event(hit, row, user_id, settings))
    if payloads:
        # Built here from a verified token and our own outbox row, so the public API's validation
        # is skipped; ingest itself (identity, dedupe, hooks, one transaction) is not.
        runtime.ingestor.ingest(payloads)
    return len(payloads)


def _event(hit: Hit, row: dict[str, Any] | None, user_id: str, settings: TrackSettings) -> Message:
    since = (hit.at_ms - row["sent_at"]) / 1000 if row and row.get("sent_at") else None
    reason = detect.automated_reason(hit.visitor.user_agent, hit.visitor.address, since, settings.automated_seconds)
    properties = {
        "message_key": str(hit.payload["k"]),
        **{f: (row or {}).get(f) for f in MESSAGE_FIELDS},
        **hit.extra,
        "automated": reason is not None,
        "automated_reason": reason,
    }
    digest = hashlib.sha256(f"{hit.token}:{hit.at_ms}".encode()).hexdigest()[:32]
    return Message(
        type="track",
        message_id=f"{hit.name}:{digest}",
        user_id=user_id,
        anonymous_id=None,
        timestamp=hit.at_ms,
        event=hit.name,
        properties=properties,
        context={"userAgent": hit.visitor.user_agent, "ip": hit.visitor.address},
    )


def view_in_browser(runtime: Runtime, token: str) -> str:
    """The HTML of the email a view token names, as it was sent."""
    payload = _verify(runtime, VIEW, token)
    row = _outbox_row(runtime, str(payload["k"]))
    if row is None:
        raise NotFound("this email is no longer stored")
    return _html_part(email.message_from_bytes(row["mime"]))


def _verify(runtime: Runtime, purpose: str, token: str) -> dict[str, Any]:
    try:
        return verify(runtime.settings.secret, purpose, token)
    except BadToken:
        log.warning("refused a %s token that does not verify: %.60s", purpose, token)
        raise


def _outbox_row(runtime: Runtime, key: str) -> dict[str, Any] | None:
    with runtime.store.read() as conn:
        ids = outbox_q.outbox_ids_by_key(conn, [key])
        return outbox_q.get_outbox(conn, ids[key]) if key in ids else None


def _user_id(runtime: Runtime, profile_id: Any) -> str | None:
    if not isinstance(profile_id, int):
        return None
    with runtime.store.read() as conn:
        profile = profile_q.get_profile(conn, profile_id=profile_id)
    return profile["user_id"] if profile else None


def _html_part(message: MimeMessage) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            return payload.decode(part.get_content_charset() or "utf-8") if isinstance(payload, bytes) else ""
    raise NotFound("this email has no HTML part")


# --- unsubscribing -----------------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    """What a person receives: everything, nothing, or everything but some topics."""

    address: str
    unsubscribed: bool
    topics: dict[str, bool]


def preferences(runtime: Runtime, token: str) -> Preferences:
    """The person's current choices, for the preference page."""
    payload = _verify(runtime, UNSUBSCRIBE, token)
    topics = track_settings(runtime.settings).topics
    traits = _traits(runtime, payload.get("profile_id"))
    off = set(traits.get("unsubscribed_topics") or [])
    return Preferences(str(payload["email"]), bool(traits.get("unsubscribed")), {t: t not in off for t in topics})


def unsubscribe(runtime: Runtime, token: str, *, source: str) -> Preferences:
    """Unsubscribe from everything (one-click or the confirmation page); honoured at every send."""
    return save_preferences(runtime, token, everything_off=True, topics_off=[], source=source)


def save_preferences(
    runtime: Runtime, token: str, *, everything_off: bool, topics_off: list[str], source: str
) -> Preferences:
    """Apply the preference page: all off (suppressed), or subscribed except some topics."""
    payload = _verify(runtime, UNSUBSCRIBE, token)
    settings: TrackSettings = track_settings(runtime.settings)
    address, profile_id = str(payload["email"]).lower(), payload.get("profile_id")
    now_ms = to_ms(runtime.clock.now())
    was_off = preferences(runtime, token).unsubscribed
    with runtime.store.begin() as conn:
        if everything_off:
            row = {"address": address, "reason": "unsubscribe", "detail": source, "created_at": now_ms}
            outbox_q.add_suppressions(conn, [row], replace=True)
        elif was_off:
            outbox_q.remove_suppression(conn, address)  # they opted back in themselves
    chosen = sorted(set(topics_off) & set(settings.topics))
    user_id = _user_id(runtime, profile_id)
    if user_id is not None:
        traits = {"unsubscribed": everything_off, "unsubscribed_topics": chosen}
        event = "unsubscribed" if everything_off or chosen else "resubscribed"
        stamp = hashlib.sha256(f"{token}:{now_ms}:{everything_off}:{chosen}".encode()).hexdigest()[:32]
        when = from_ms(now_ms).isoformat()
        properties = {
            "scope": "all" if everything_off else "topics",
            "topics": chosen,
            "source": source,
            "outbox_id": payload.get("outbox_id"),
        }
        runtime.ingestor.ingest_raw(
            [
                {
                    "type": "identify",
                    "userId": user_id,
                    "traits": traits,
                    "messageId": f"prefs:{stamp}",
                    "timestamp": when,
                },
                {
                    "type": "track",
                    "userId": user_id,
                    "event": event,
                    "messageId": f"{event}:{stamp}",
                    "timestamp": when,
                    "properties": properties,
                },
            ]
        )
    return preferences(runtime, token)


def _traits(runtime: Runtime, profile_id: Any) -> dict[str, Any]:
    if not isinstance(profile_id, int):
        return {}
    with runtime.store.read() as conn:
        return profile_q.traits_of(conn, [profile_id]).get(profile_id, {})
