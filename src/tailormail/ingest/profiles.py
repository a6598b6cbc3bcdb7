"""A person's data as the API and CLI show it: view, edit traits, export, erase."""

from __future__ import annotations

from typing import Any

from tailormail.clock import from_ms
from tailormail.errors import NotFound, ValidationError
from tailormail.store import Store
from tailormail.store import events as event_q
from tailormail.store import profiles as profile_q
from tailormail.store import segments as segment_q


def _profile_or_404(conn: Any, user_id: str) -> dict[str, Any]:
    profile = profile_q.get_profile(conn, user_id=user_id)
    if profile is None:
        raise NotFound(f"no profile with userId {user_id!r}")
    return profile


def profile_view(store: Store, user_id: str, *, events: int = 50) -> dict[str, Any]:
    """Traits, anonymous ids, memberships and the latest events of a person."""
    with store.read() as conn:
        profile = _profile_or_404(conn, user_id)
        return {
            **_public(profile),
            "anonymousIds": profile_q.anonymous_ids(conn, profile["id"]),
            "memberships": segment_q.segments_of(conn, profile["id"]),
            "events": [event_json(e) for e in event_q.recent_events(conn, profile["id"], events)],
        }


def patch_traits(store: Store, user_id: str, changes: Any, now_ms: int) -> dict[str, Any]:
    """Merge ``changes`` into a person's traits; a null value removes that trait."""
    if not isinstance(changes, dict):
        raise ValidationError("traits must be a JSON object", field="traits")
    with store.begin() as conn:
        profile = _profile_or_404(conn, user_id)
        traits = {**(profile["traits"] or {}), **changes}
        traits = {k: v for k, v in traits.items() if v is not None}
        profile_q.set_traits(conn, profile["id"], traits, now_ms)
        profile["traits"] = traits
        return _public(profile)


def erase(store: Store, user_id: str) -> None:
    """Erase a person everywhere (GDPR right to erasure)."""
    with store.begin() as conn:
        profile = _profile_or_404(conn, user_id)
        profile_q.erase_profile(conn, profile["id"])


def export(store: Store, user_id: str) -> dict[str, Any]:
    """Everything stored about a person (GDPR right of access)."""
    with store.read() as conn:
        profile = _profile_or_404(conn, user_id)
        return {
            **_public(profile),
            "anonymousIds": profile_q.anonymous_ids(conn, profile["id"]),
            "events": [event_json(e) for e in event_q.events_of(conn, profile["id"])],
        }


def _public(profile: dict[str, Any]) -> dict[str, Any]:
    return {
        "userId": profile["user_id"],
        "traits": profile["traits"] or {},
        "firstSeen": from_ms(profile["first_seen"]).isoformat(),
        "lastSeen": from_ms(profile["last_seen"]).isoformat(),
    }


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    """An event row in Segment's own shape."""
    out: dict[str, Any] = {
        "messageId": row["message_id"],
        "type": row["type"],
        "timestamp": from_ms(row["ts"]).isoformat(),
        "receivedAt": from_ms(row["received_at"]).isoformat(),
        "properties": row["properties"] or {},
    }
    if row.get("user_id"):
        out["userId"] = row["user_id"]
    if row.get("anonymous_id"):
        out["anonymousId"] = row["anonymous_id"]
    if row["event"] is not None:
        out["event" if row["type"] == "track" else "name"] = row["event"]
    if row.get("context"):
        out["context"] = row["context"]
    return out
