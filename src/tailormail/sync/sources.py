"""Sync configuration: ``[[sync.sources]]`` / ``[[sync.destinations]]`` in tailormail.toml and ``sync/*.yaml``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from tailormail.config import CONFIG_FILE, Settings
from tailormail.errors import ConfigError
from tailormail.ingest.files import FORMATS as FILE_FORMATS
from tailormail.ingest.pull import Pagination

DEFAULT_SCHEDULE = "0 3 * * *"
"""Off-peak by default: 03:00 every day in the workspace timezone."""

PAGINATION_TYPES = ("none", "cursor", "page", "link")


@dataclass(frozen=True)
class Mapping:
    """How a record becomes a Segment message."""

    type: str = "identify"
    """identify (record fields become traits) or track (record becomes an event)."""
    event: str = ""
    """The event name of a track mapping."""
    key: str = "id"
    """Selector of the record's own id; with ``updated`` it makes the messageId."""
    updated: str = ""
    """Selector of the record's last-modified time (idempotency and the watermark)."""
    user_id: str = "id"
    """Selector of the person's userId."""
    timestamp: str = ""
    """Selector of when it happened (default: ``updated``, else the run time)."""
    traits: dict[str, str] = field(default_factory=dict)
    """trait name -> selector (identify); empty: every top-level field except the key."""
    properties: dict[str, str] = field(default_factory=dict)
    """property name -> selector (track); empty: every top-level field."""


@dataclass(frozen=True)
class Source:
    """One scheduled pull: an HTTP JSON endpoint or files."""

    name: str
    kind: str = "http"
    schedule: str = DEFAULT_SCHEDULE
    mapping: Mapping = field(default_factory=Mapping)
    url: str = ""
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    auth_header: str = "Authorization"
    auth_env: str = ""
    """Environment variable holding the auth header's value (never written in the config)."""
    auth_prefix: str = ""
    """Put before the secret, e.g. ``Bearer ``."""
    records: str = ""
    """JMESPath or dotted path of the record list in each page (empty: the body is the list)."""
    pagination: Pagination = field(default_factory=Pagination)
    watermark_param: str = ""
    """Query parameter that receives the watermark, e.g. ``updated_since``."""
    retries: int = 3
    """Retries of one failing page before the run fails."""
    backoff_seconds: float = 1.0
    timeout: float = 30.0
    allow_private: bool | None = None
    """Allow private/loopback addresses (None: the [sync] default)."""
    path: str = ""
    """File sources: a path or glob relative to the workspace."""
    format: str = ""
    """csv, jsonl, parquet or whitespace (default: from the extension)."""
    batch_size: int = 1000
    origin: str = CONFIG_FILE


@dataclass(frozen=True)
class Destination:
    """One outbound sync: chosen events or trait changes POSTed to a URL."""

    name: str
    url: str
    on_events: tuple[str, ...] = ()
    """Event names that trigger a delivery (e.g. purchase, segment_entered)."""
    on_traits: tuple[str, ...] = ()
    """Traits whose change triggers a delivery (a dotted prefix: ``predicted`` matches every score)."""
    send: str = "profile"
    """profile (the person's traits) or event (the event and the person)."""
    secret_env: str = ""
    """Environment variable with the HMAC secret (default: the workspace secret)."""
    max_attempts: int = 8
    """Failures before a delivery moves to the dead-letter list."""
    backoff_seconds: float = 30.0
    rate_per_second: float = 10.0
    timeout: float = 10.0
    allow_private: bool | None = None
    allowed_networks: tuple[str, ...] = ()
    origin: str = CONFIG_FILE


@dataclass(frozen=True)
class SyncConfig:
    """Every source and destination of a workspace, and the shared settings."""

    sources: tuple[Source, ...] = ()
    destinations: tuple[Destination, ...] = ()
    allow_private: bool = False
    """Default for outbound requests: refuse private and loopback addresses."""
    alert_webhook: str = ""
    """Optional URL that receives a signed POST for every alert."""
    alert_after_failures: int = 3

    def source(self, name: str) -> Source:
        """The source called ``name`` (ConfigError when there is none)."""
        for item in self.sources:
            if item.name == name:
                return item
        raise ConfigError(f"no sync source named {name!r}", hint=f"known: {', '.join(self.names()) or 'none'}")

    def destination(self, name: str) -> Destination:
        """The destination called ``name``."""
        for item in self.destinations:
            if item.name == name:
                return item
        raise ConfigError(f"no sync destination named {name!r}", hint=f"known: {', '.join(self.names()) or 'none'}")

    def names(self) -> list[str]:
        """Every source and destination name."""
        return [s.name for s in self.sources] + [d.name for d in self.destinations]


def load_sync_config(settings: Settings) -> SyncConfig:
    """Read ``[sync]`` of tailormail.toml and every ``sync/*.yaml`` of the workspace."""
    table = dict(settings.section("sync"))
    sources = [_source(raw, CONFIG_FILE) for raw in _list(table.pop("sources", []), "sources", CONFIG_FILE)]
    dests = [
        _destination(raw, CONFIG_FILE) for raw in _list(table.pop("destinations", []), "destinations", CONFIG_FILE)
    ]
    for path in sorted((settings.workspace / "sync").glob("*.y*ml")):
        more_sources, more_dests = _yaml_file(path)
        sources += more_sources
        dests += more_dests
    config = _build(SyncConfig, table, f"{CONFIG_FILE} [sync]")
    names = [s.name for s in sources] + [d.name for d in dests]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"sync names must be unique: {', '.join(duplicates)}", hint="rename one of them")
    return dataclasses.replace(config, sources=tuple(sources), destinations=tuple(dests))


def _yaml_file(path: Path) -> tuple[list[Source], list[Destination]]:
    where = f"sync/{path.name}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: {exc}", hint="fix the YAML syntax") from None
    if not isinstance(data, dict) or set(data) - {"sources", "destinations"}:
        raise ConfigError(f"{where}: expected top-level keys sources and/or destinations")
    sources = [_source(raw, where) for raw in _list(data.get("sources", []), "sources", where)]
    dests = [_destination(raw, where) for raw in _list(data.get("destinations", []), "destinations", where)]
    return sources, dests


def _source(raw: dict[str, Any], where: str) -> Source:
    raw = dict(raw)
    name = raw.get("name", "?")
    at = f"{where} source {name!r}"
    raw["mapping"] = _build(Mapping, raw.pop("mapping", {}), f"{at} mapping")
    raw["pagination"] = _build(Pagination, raw.pop("pagination", {}), f"{at} pagination")
    source: Source = _build(Source, {**raw, "origin": where}, at)
    _check_source(source, at)
    return source


def _check_source(source: Source, at: str) -> None:
    if source.kind not in ("http", "file"):
        raise ConfigError(f"{at}: kind must be http or file, got {source.kind!r}")
    if source.kind == "http" and not source.url.startswith(("http://", "https://")):
        raise ConfigError(f"{at}: url must start with http:// or https://", hint="set url")
    if source.kind == "file" and not source.path:
        raise ConfigError(f"{at}: a file source needs path (a file or a glob)")
    if source.format and source.format not in FILE_FORMATS:
        raise ConfigError(f"{at}: format must be one of {', '.join(FILE_FORMATS)}")
    if source.pagination.type not in PAGINATION_TYPES:
        raise ConfigError(f"{at}: pagination.type must be one of {', '.join(PAGINATION_TYPES)}")
    if source.mapping.type not in ("identify", "track"):
        raise ConfigError(f"{at}: mapping.type must be identify or track")
    if source.mapping.type == "track" and not source.mapping.event:
        raise ConfigError(f"{at}: a track mapping needs event (the event name)")
    if not croniter.is_valid(source.schedule):
        raise ConfigError(f"{at}: schedule {source.schedule!r} is not a cron expression", hint="e.g. '0 3 * * *'")


def _destination(raw: dict[str, Any], where: str) -> Destination:
    raw = dict(raw)
    at = f"{where} destination {raw.get('name', '?')!r}"
    for key in ("on_events", "on_traits", "allowed_networks"):
        if key in raw:
            raw[key] = tuple(_list(raw[key], key, at))
    dest: Destination = _build(Destination, {**raw, "origin": where}, at)
    if not dest.url.startswith(("http://", "https://")):
        raise ConfigError(f"{at}: url must start with http:// or https://")
    if dest.send not in ("profile", "event"):
        raise ConfigError(f"{at}: send must be profile or event")
    if not dest.on_events and not dest.on_traits:
        raise ConfigError(f"{at}: nothing triggers it", hint="set on_events and/or on_traits")
    if dest.max_attempts < 1 or dest.rate_per_second <= 0:
        raise ConfigError(f"{at}: max_attempts must be >= 1 and rate_per_second > 0")
    return dest


def _list(value: Any, name: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {name} must be a list")
    return value


def _build(cls: Any, values: Any, where: str) -> Any:
    """A dataclass from a table, naming the unknown or missing key and the file."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table of settings")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]}", hint=f"known keys: {', '.join(sorted(known))}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}", hint="name and url are required") from None
