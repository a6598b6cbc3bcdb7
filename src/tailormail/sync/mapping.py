"""Records to Segment messages: field mapping and deterministic message ids."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Any

from tailormail.errors import ValidationError
from tailormail.ingest.pull import Selector
from tailormail.sync.sources import Mapping


class RecordMapper:
    """Turns one source's records into raw Segment messages (selectors compiled once)."""

    def __init__(self, source_name: str, mapping: Mapping) -> None:
        self.source = source_name
        self.mapping = mapping
        self.key = Selector(mapping.key)
        self.user_id = Selector(mapping.user_id)
        self.updated = Selector(mapping.updated) if mapping.updated else None
        self.timestamp = (
            Selector(mapping.timestamp or mapping.updated) if (mapping.timestamp or mapping.updated) else None
        )
        fields = mapping.traits if mapping.type == "identify" else mapping.properties
        self.fields = {name: Selector(expr) for name, expr in fields.items()}

    def updated_value(self, record: Any) -> str | None:
        """The record's last-modified value as text (the watermark candidate)."""
        value = self.updated(record) if self.updated else None
        return None if value is None else _text(value)

    def message(self, record: Any, updated: str | None = None) -> dict[str, Any]:
        """The raw Segment message for a record (``updated``: its updated value, if already read)."""
        if not isinstance(record, dict):
            raise ValidationError(f"record must be an object, got {type(record).__name__}", field="record")
        key = self.key(record)
        if key in (None, ""):
            raise ValidationError(f"record has no {self.mapping.key!r} (its key)", field=self.mapping.key)
        user_id = self.user_id(record)
        if user_id in (None, "") or isinstance(user_id, dict | list | bool):
            raise ValidationError(
                f"record has no usable {self.mapping.user_id!r} (the userId)", field=self.mapping.user_id
            )
        updated = self.updated_value(record) if updated is None else updated
        raw: dict[str, Any] = {
            "type": self.mapping.type,
            "userId": str(user_id),
            "messageId": message_id(self.source, str(key), updated),
            "context": {"source": {"name": self.source, "key": str(key)}},
        }
        stamp = self.timestamp(record) if self.timestamp else None
        if stamp is not None:
            raw["timestamp"] = _time_text(stamp, self.mapping.timestamp or self.mapping.updated)
        values = (
            {n: _plain(s(record)) for n, s in self.fields.items()} if self.fields else _defaults(record, self.mapping)
        )
        values = {k: v for k, v in values.items() if v is not None}
        if self.mapping.type == "identify":
            raw["traits"] = values
        else:
            raw["event"] = self.mapping.event
            raw["properties"] = values
        return raw


def message_id(source: str, key: str, updated: str | None) -> str:
    """The same record in the same version always gets the same messageId (so a re-pull changes nothing)."""
    text = f"{len(source)}:{source}|{len(key)}:{key}|{updated}"  # length-prefixed: no two triples collide
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f"sync-{digest[:40]}"


def _defaults(record: dict[str, Any], mapping: Mapping) -> dict[str, Any]:
    skip = {mapping.key} if mapping.type == "identify" else set()
    return {k: _plain(v) for k, v in record.items() if k not in skip}


def _plain(value: Any) -> Any:
    """JSON-safe values (Parquet and CSV bring datetimes and decimals)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


def _time_text(value: Any, field: str) -> str:
    """An ISO time from text, a datetime or epoch seconds/milliseconds."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    if isinstance(value, str):
        return value
    raise ValidationError(f"{field} must be a time, got {value!r}", field=field)
