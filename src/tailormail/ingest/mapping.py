"""Column mapping: a row of a data file becomes a Segment message (or a catalog product).

A target is a Segment field (``userId``, ``timestamp``...) or a path inside an
object (``properties.revenue``, ``traits.address.city``).  Columns with a
well-known name map on their own; ``--map column=target`` maps the rest, and a
column no rule names goes to ``properties`` (events) or ``traits`` (profiles).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

from tailormail.errors import ValidationError

TOP_LEVEL = (
    "userId", "anonymousId", "messageId", "type", "event", "name", "timestamp", "originalTimestamp", "previousId",
    "groupId",
)  # fmt: skip
"""Segment fields a column may map to directly."""

OBJECTS = ("properties", "traits", "context")
"""Segment objects a column may map into (``properties.revenue``) or fill whole (a JSON column)."""

PRODUCT_FIELDS = ("product_id", "name", "category", "price", "url", "image_url", "properties")
"""Catalog columns of the products table."""

SKIP = "-"
"""The target that drops a column: ``--map internal_note=-``."""

_ALIASES = {
    "userid": "userId",
    "externalid": "userId",
    "anonymousid": "anonymousId",
    "messageid": "messageId",
    "type": "type",
    "event": "event",
    "eventname": "event",
    "name": "name",
    "timestamp": "timestamp",
    "previousid": "previousId",
    "groupid": "groupId",
    "properties": "properties",
    "traits": "traits",
    "context": "context",
    "originaltimestamp": "originalTimestamp",
    # Segment's delivery metadata, not part of the event: when an export was
    # received (this import is a new receipt), routing, library versions.
    "receivedat": SKIP,
    "sentat": SKIP,
    "integrations": SKIP,
    "version": SKIP,
    "channel": SKIP,
    "writekey": SKIP,
    "projectid": SKIP,
}
_PRODUCT_ALIASES = {
    "productid": "product_id",
    "id": "product_id",
    "sku": "product_id",
    "name": "name",
    "title": "name",
    "category": "category",
    "price": "price",
    "url": "url",
    "imageurl": "image_url",
    "image": "image_url",
    "properties": "properties",
}
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


class RowError(ValueError):
    """A row cannot be mapped; names the field and says why."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def _key(column: str) -> str:
    return re.sub(r"[\s_\-.]", "", column).lower()


def parse_maps(pairs: list[str]) -> dict[str, str]:
    """``["col=target", ...]`` (the repeated ``--map`` option) as a dict."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise ValidationError(
                f"--map {pair!r} is not column=field", field="map", hint="e.g. --map customer_id=userId"
            )
        mapping[column.strip()] = target.strip()
    return mapping


@dataclass
class ColumnMapping:
    """How the columns of one file become message fields."""

    kind: str
    """``events``, ``profiles`` or ``products``."""
    maps: dict[str, str] = field(default_factory=dict)
    date_format: str | None = None
    event: str | None = None
    text_values: bool = False
    """True for CSV/text files, where ``12.5`` should become a number."""
    _targets: dict[str, str] = field(default_factory=dict, init=False)
    _setters: dict[str, Callable[[dict[str, Any], Any], None]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        allowed = PRODUCT_FIELDS if self.kind == "products" else TOP_LEVEL + OBJECTS
        for column, target in self.maps.items():
            head = target.split(".", 1)[0]
            if target != SKIP and target not in allowed and not (head in OBJECTS and "." in target):
                raise ValidationError(
                    f"--map {column}={target}: unknown field {target!r}",
                    field="map",
                    hint=f"map to one of {', '.join(allowed)}"
                    + ("" if self.kind == "products" else ", or properties.NAME"),
                )

    def target(self, column: str) -> str:
        """Where a column's value goes."""
        found = self._targets.get(column)
        if found is None:
            found = self.maps.get(column) or self._default_target(column)
            self._targets[column] = found
        return found

    def _default_target(self, column: str) -> str:
        if self.kind == "products":
            return _PRODUCT_ALIASES.get(_key(column)) or f"properties.{column}"
        known = _ALIASES.get(_key(column))
        if known:
            return known
        return f"{'traits' if self.kind == 'profiles' else 'properties'}.{column}"

    def message(self, row: dict[str, Any]) -> dict[str, Any]:
        """A raw Segment message (before validation) for one row."""
        raw: dict[str, Any] = {}
        for column, value in row.items():
            (self._setters.get(column) or self._setter(column))(raw, value)
        if self.kind == "profiles":
            raw["type"] = "identify"
        else:
            raw.setdefault("type", "track")
            if self.event and not raw.get("event"):
                raw["event"] = self.event
            _from_export_shape(raw)
        return raw

    def product(self, row: dict[str, Any]) -> dict[str, Any]:
        """A products-table row (without ``updated_at``) for one row."""
        out: dict[str, Any] = {"properties": {}}
        for column, value in row.items():
            (self._setters.get(column) or self._setter(column))(out, value)
        if not out.get("product_id"):
            raise RowError("product_id is missing", "product_id")
        out["name"] = str(out.get("name") or out["product_id"])
        if out.get("price") is not None and not isinstance(out["price"], int | float):
            raise RowError(f"price {out['price']!r} is not a number", "price")
        return out

    def _setter(self, column: str) -> Callable[[dict[str, Any], Any], None]:
        """How to put a column's value into the output, worked out once per column."""
        target = self.target(column)
        head, _, rest = target.partition(".")
        setter: Callable[[dict[str, Any], Any], None]
        if target == SKIP:
            setter = _ignore
        elif head in OBJECTS and not rest:
            setter = partial(_put_object, head)
        elif rest:
            setter = partial(_put_path, self._value, head, rest.split("."))
        else:
            times = {"timestamp": self._timestamp, "originalTimestamp": self._timestamp}
            convert = {**times, "price": self._value}.get(target, _identifier)
            setter = partial(_put_value, convert, target)
        self._setters[column] = setter
        return setter

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            if value == "":
                return None
            # "00042" stays text (an id, not a number); "12.50" and "-3" are numbers.
            if self.text_values and (value[0].isdigit() or value[0] == "-") and _NUMBER.fullmatch(value):
                return float(value) if "." in value or "e" in value or "E" in value else int(value)
            return value
        return plain(value)

    def _timestamp(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, datetime | date):
            return plain(value)
        if self.date_format:
            text = str(int(value)) if isinstance(value, int | float) else str(value).strip()
            return _formatted_time(text, self.date_format)
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = value / 1000 if value > 100_000_000_000 else value  # ms or s since the epoch
            return datetime.fromtimestamp(seconds, UTC).isoformat()
        return str(value).strip()


def plain(value: Any) -> Any:
    """A JSON-safe copy of a value read from Parquet or JSON."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _identifier(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() if isinstance(value, str | int | float) else value


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RowError(f"{name} is not a JSON object", name) from None
    if not isinstance(value, dict):
        raise RowError(f"{name} must be an object", name)
    return plain(value)


def _ignore(out: dict[str, Any], value: Any) -> None:
    """The setter of a skipped column."""


def _put_object(name: str, out: dict[str, Any], value: Any) -> None:
    decoded = _object(value, name)
    if decoded:
        out.setdefault(name, {}).update(decoded)


def _put_path(convert: Callable[[Any], Any], head: str, path: list[str], out: dict[str, Any], value: Any) -> None:
    value = convert(value)
    if value is not None:
        node = out.setdefault(head, {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value


def _put_value(convert: Callable[[Any], Any], name: str, out: dict[str, Any], value: Any) -> None:
    value = convert(value)
    if value is not None:
        out[name] = value


@lru_cache(maxsize=65_536)
def _formatted_time(text: str, date_format: str) -> str:
    """ISO text of a time in ``date_format`` (cached: files repeat their dates a lot)."""
    try:
        moment = datetime.strptime(text, date_format)
    except ValueError:
        raise RowError(f"{text!r} does not match the date format {date_format}", "timestamp") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _from_export_shape(raw: dict[str, Any]) -> None:
    """Undo how events are stored (identify traits, group and alias ids live in properties).

    A ``name`` column is a page's name; on other events it is a property.
    """
    kind = raw.get("type")
    if kind not in ("page", "screen") and "name" in raw:
        raw.setdefault("properties", {}).setdefault("name", raw.pop("name"))
    props = raw.get("properties") or {}
    if kind == "identify" and not raw.get("traits") and props:
        raw["traits"] = raw.pop("properties")
    elif kind == "group" and "groupId" not in raw and "groupId" in props:
        raw["groupId"] = props["groupId"]
        raw["traits"] = {k: v for k, v in props.items() if k != "groupId"}
        raw.pop("properties")
    elif kind == "alias" and "previousId" not in raw and "previousId" in props:
        raw["previousId"] = raw.pop("properties")["previousId"]
