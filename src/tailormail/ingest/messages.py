"""Segment-compatible messages: validation and normalisation of the wire format.

A message is checked field by field; an error names the field and the
message's index in its batch so a client can find the bad one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from tailormail.clock import parse_time, to_ms
from tailormail.errors import PayloadTooLarge, ValidationError

TYPES = ("identify", "track", "page", "screen", "group", "alias")
"""The Segment message types we accept."""

REVENUE_KEYS = ("revenue", "total", "value")
"""Segment e-commerce properties that carry an order's money, in priority order."""


@dataclass
class Message:
    """One validated message, ready to store."""

    type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: int
    event: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] | None = None
    previous_id: str | None = None
    group_id: str | None = None

    @property
    def revenue(self) -> float | None:
        """The money this event carries, if it carries any."""
        return revenue_of(self.properties)


def revenue_of(properties: dict[str, Any]) -> float | None:
    """The money in an event's properties (``revenue``, else ``total``, else ``value``)."""
    for key in REVENUE_KEYS:
        value = properties.get(key)
        # None first: most events carry none (an isinstance of a union per key cost more than the rest).
        if value is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def parse_message(
    raw: Any,
    *,
    index: int | None = None,
    received_ms: int,
    sent_at: str | None = None,
    forced_type: str | None = None,
    max_bytes: int | None = None,
) -> Message:
    """Validate one raw message (a decoded JSON object) into a Message."""
    if type(raw) is dict:
        if max_bytes is not None:
            _check_size(raw, index, max_bytes)
        message = _well_formed(raw, received_ms, forced_type)
        if message is not None:
            return message
        return _checked(raw, index, received_ms, sent_at, forced_type, None)
    return _checked(raw, index, received_ms, sent_at, forced_type, max_bytes)


_FAST_TYPES = frozenset(("identify", "track", "page", "screen"))
"""Types ``_well_formed`` handles; group and alias (rare, more rules) always take ``_checked``."""


def _well_formed(raw: dict[str, Any], received_ms: int, forced_type: str | None) -> Message | None:
    """The Message of a plainly well-formed message, or None to let ``_checked`` decide (and name any error).

    Only exact types are accepted here (``str``, ``dict``, as JSON decodes them):
    anything else, and every case with a rule of its own (ints as ids, a missing
    messageId, originalTimestamp, traits in context), goes the long way, so this
    gives exactly ``_checked``'s result or none at all.
    """
    kind = forced_type or raw.get("type")
    if type(kind) is not str or kind not in _FAST_TYPES:  # not hashable, even: a set lookup would raise
        return None
    get = raw.get
    user_id = get("userId")
    anonymous_id = get("anonymousId")
    if user_id is not None and (type(user_id) is not str or not user_id):
        return None
    if anonymous_id is not None and (type(anonymous_id) is not str or not anonymous_id):
        return None
    if user_id is None and anonymous_id is None:
        return None
    message_id = get("messageId")
    if type(message_id) is not str or not message_id:
        return None
    if get("previousId") is not None or get("groupId") is not None:
        return None
    properties = get("properties")
    if properties is None:
        properties = {}
    elif type(properties) is not dict:
        return None
    traits = get("traits")
    if traits is None:
        traits = {}
    elif type(traits) is not dict:
        return None
    context = get("context")
    if context is not None and type(context) is not dict:
        return None
    if kind == "page" or kind == "screen":
        name = get("name")
        event = name.strip() if type(name) is str else None
        if name is not None and event is None:
            return None
    else:
        event = get("event")
        if event is not None:
            if type(event) is not str:
                return None
            event = event.strip()
        if kind == "track" and not event:
            return None
        if kind == "identify" and not traits and context is not None and "traits" in context:
            return None
    stamp = get("timestamp")
    timestamp: int | None = received_ms
    if stamp is None:
        if get("originalTimestamp") is not None:
            return None
    elif type(stamp) is str and stamp:
        timestamp = _iso_ms(stamp)
    else:
        return None
    if timestamp is None:
        return None
    return Message(kind, message_id, user_id, anonymous_id, timestamp, event, properties, traits, context)


@lru_cache(maxsize=16_384)
def _iso_ms(text: str) -> int | None:
    """Milliseconds of an ISO-8601 time, or None when it is not one (cached: batches repeat their times)."""
    try:
        return to_ms(parse_time(text))
    except ValueError:
        return None


def _encoded_size(raw: Any) -> int:
    """Bytes of the message as compact UTF-8 JSON (what a sender puts on the wire)."""
    try:
        return len(orjson.dumps(raw, default=str))
    except TypeError:  # integers beyond 64 bits, non-string keys: the standard library takes them
        return len(json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8"))


def _check_size(raw: Any, index: int | None, max_bytes: int) -> None:
    size = _encoded_size(raw)
    if size > max_bytes:
        where = f" at batch[{index}]" if index is not None else ""
        raise PayloadTooLarge(
            f"message{where} is {size} bytes, over the {max_bytes}-byte limit",
            field="message",
            index=index,
            hint="split large properties or send fewer of them",
        )


def _checked(
    raw: Any, index: int | None, received_ms: int, sent_at: str | None, forced_type: str | None, max_bytes: int | None
) -> Message:
    """Every check, field by field: the reference for ``_well_formed`` and the source of every error."""
    where = f" at batch[{index}]" if index is not None else ""

    def fail(msg: str, name: str) -> ValidationError:
        return ValidationError(f"{msg}{where}", field=name, index=index)

    if not isinstance(raw, dict):
        raise fail("message must be a JSON object", "message")
    if max_bytes is not None:
        _check_size(raw, index, max_bytes)
    kind = forced_type or raw.get("type")
    if kind not in TYPES:
        raise fail(f"type must be one of {', '.join(TYPES)}, got {kind!r}", "type")
    user_id = _optional_id(raw, "userId", fail)
    anonymous_id = _optional_id(raw, "anonymousId", fail)
    previous_id = _optional_id(raw, "previousId", fail)
    if kind == "alias":
        if not previous_id or not user_id:
            raise fail("alias needs both previousId and userId", "previousId" if not previous_id else "userId")
    elif not user_id and not anonymous_id:
        raise fail("either userId or anonymousId is required", "userId")
    event = raw.get("event")
    if kind == "track" and (not isinstance(event, str) or not event.strip()):
        raise fail("track needs a non-empty string event", "event")
    if kind in ("page", "screen"):
        event = raw.get("name") if isinstance(raw.get("name"), str) else None
    properties = _object(raw, "properties", fail)
    traits = _object(raw, "traits", fail)
    context = raw.get("context")
    if context is not None and not isinstance(context, dict):
        raise fail("context must be an object", "context")
    if kind == "identify" and not traits and isinstance(context, dict) and isinstance(context.get("traits"), dict):
        traits = dict(context["traits"])
    timestamp = _timestamp(raw, received_ms, sent_at, fail)
    message_id = raw.get("messageId")
    if message_id is None:
        message_id = _derived_message_id(raw)
    elif not isinstance(message_id, str | int) or str(message_id) == "":
        raise fail("messageId must be a non-empty string", "messageId")
    group_id = raw.get("groupId")
    if kind == "group" and group_id is None:
        raise fail("group needs groupId", "groupId")
    return Message(
        type=kind,
        message_id=str(message_id),
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=timestamp,
        event=event.strip() if isinstance(event, str) else None,
        properties=properties,
        traits=traits,
        context=context,
        previous_id=previous_id,
        group_id=str(group_id) if group_id is not None else None,
    )


def _optional_id(raw: dict[str, Any], name: str, fail: Any) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise fail(f"{name} must be a string", name)
    return str(value)


def _object(raw: dict[str, Any], name: str, fail: Any) -> dict[str, Any]:
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(f"{name} must be an object", name)
    return value


def _timestamp(raw: dict[str, Any], received_ms: int, sent_at: str | None, fail: Any) -> int:
    """When it happened, corrected for the client's clock skew as Segment does."""
    text = raw.get("timestamp") or raw.get("originalTimestamp")
    if text is None:
        return received_ms
    try:
        moment = _as_time(text)
    except (TypeError, ValueError):
        raise fail(f"timestamp {text!r} is not an ISO-8601 time", "timestamp") from None
    ms = to_ms(moment)
    sent = raw.get("sentAt") or sent_at
    if sent and raw.get("timestamp") is None:
        # Only originalTimestamp is device time: shift by (receivedAt - sentAt).
        try:
            ms += received_ms - to_ms(_as_time(sent))
        except (TypeError, ValueError):
            raise fail(f"sentAt {sent!r} is not an ISO-8601 time", "sentAt") from None
    return ms


def _as_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise TypeError("not a string")
    return parse_time(value)


def _derived_message_id(raw: dict[str, Any]) -> str:
    """A stable id for a message sent without one, so a replay is still a duplicate."""
    body = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return "derived-" + hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]
