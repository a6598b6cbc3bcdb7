"""Records to Segment messages: field mapping and deterministic message ids."""

from __future__ import annotations

from datetime import UTC, date, datetime
from hashlib import sha256
from typing import Any

from tailormail.errors import ValidationError
from tailormail.ingest.pull import accessor
from tailormail.sync.sources import Mapping

_SCALARS = frozenset((str, int, float, bool, type(None)))
"""Exact types a record value keeps as it is (``_plain`` would return them unchanged)."""

_NOT_IDS = (dict, list, bool)
"""Values that are no userId."""


class RecordMapper:
    """Turns one source's records into raw Segment messages (every selector compiled once into a lookup)."""

    def __init__(self, source_name: str, mapping: Mapping) -> None:
        self.source = source_name
        self.mapping = mapping
        self._key = accessor(mapping.key)
        self._user_id = accessor(mapping.user_id)
        self._updated = accessor(mapping.updated) if mapping.updated else None
        self._stamp_field = mapping.timestamp or mapping.updated
        self._stamp = accessor(self._stamp_field) if self._stamp_field else None
        fields = mapping.traits if mapping.type == "identify" else mapping.properties
        self._fields = tuple((name, accessor(expr)) for name, expr in fields.items())
        self._type = mapping.type
        self._id_prefix = f"{len(source_name)}:{source_name}|"  # message_id's text, the part every record shares

    def updated_value(self, record: Any) -> str | None:
        """The record's last-modified value as text (the watermark candidate)."""
        value = self._updated(record) if self._updated else None
        return value if value is None or type(value) is str else _text(value)

    def message(self, record: Any, updated: str | None = None) -> dict[str, Any]:
        """The raw Segment message for a record (``updated``: its updated value, if already read)."""
        if not isinstance(record, dict):
            raise ValidationError(f"record must be an object, got {type(record).__name__}", field="record")
        key = self._key(record)
        if type(key) is not str or not key:  # the checks of any other kind of key
            if key is None or key == "":
                raise ValidationError(f"record has no {self.mapping.key!r} (its key)", field=self.mapping.key)
            key = str(key)
        user_id = self._user_id(record)
        if type(user_id) is not str or not user_id:
            if user_id is None or user_id == "" or isinstance(user_id, _NOT_IDS):
                raise ValidationError(
                    f"record has no usable {self.mapping.user_id!r} (the userId)", field=self.mapping.user_id
                )
            user_id = str(user_id)
        if updated is None:
            updated = self.updated_value(record)
        text = f"{self._id_prefix}{len(key)}:{key}|{updated}"  # as message_id() builds it
        raw: dict[str, Any] = {
            "type": self._type,
            "userId": user_id,
            "messageId": "sync-" + sha256(text.encode()).hexdigest()[:40],
            "context": {"source": {"name": self.source, "key": key}},
        }
        if self._stamp is not None:
            stamp = self._stamp(record)
            if stamp is not None:
                raw["timestamp"] = stamp if type(stamp) is str else _time_text(stamp, self._stamp_field)
        values: dict[str, Any] = {}
        if self._fields:
            for name, get in self._fields:
                value = get(record)
                if value is not None:
                    values[name] = value if type(value) in _SCALARS else _plain(value)
        else:
            values = {k: v for k, v in _defaults(record, self.mapping).items() if v is not None}
        if self._type == "identify":
            raw["traits"] = values
        else:
            raw["event"] = self.mapping.event
            raw["properties"] = values
        return raw


def message_id(source: str, key: str, updated: str | None) -> str:
    """The same record in the same version always gets the same messageId (so a re-pull changes nothing)."""
    text = f"{len(source)}:{source}|{len(key)}:{key}|{updated}"  # length-prefixed: no two triples collide
    digest = sha256(text.encode("utf-8")).hexdigest()
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
