"""Settings: the workspace folder, its ``tailormail.toml`` and the environment."""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tailormail.errors import ConfigError

CONFIG_FILE = "tailormail.toml"
SECRET_FILE = ".tailormail-secret"
DATABASE_FILE = "tailormail.db"
WORKSPACE_FOLDERS = ("segments", "templates", "blocks", "journeys")


T = TypeVar("T")


@dataclass(frozen=True)
class EventNames:
    """The event names the presets use; a Segment e-commerce source maps here."""

    product_view: str = "product_view"
    add_to_cart: str = "add_to_cart"
    checkout_started: str = "checkout_started"
    purchase: str = "purchase"


@dataclass(frozen=True)
class IngestLimits:
    """Size limits that protect the API from oversized or abusive payloads."""

    max_message_bytes: int = 32 * 1024
    """One message over this is refused (Segment's own limit: 32 KB)."""
    max_batch_bytes: int = 500 * 1024
    """One batch request over this is refused (Segment's own limit: 500 KB)."""


@dataclass(frozen=True)
class Settings:
    """Everything a workspace is configured with, read once at start-up."""

    workspace: Path
    database_url: str
    timezone: str = "UTC"
    name: str = "tailormail"
    secret: str = ""
    events: EventNames = field(default_factory=EventNames)
    limits: IngestLimits = field(default_factory=IngestLimits)
    raw: dict[str, Any] = field(default_factory=dict)
    """The whole parsed ``tailormail.toml``, for sections later modules own."""

    def section(self, name: str) -> dict[str, Any]:
        """One table of ``tailormail.toml`` (empty when absent)."""
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{CONFIG_FILE}: [{name}] must be a table", hint="see README")
        return value

    def table(self, cls: type[T], name: str) -> T:
        """The ``[name]`` table read into the dataclass ``cls``; an unknown key is an error that names it."""
        return _dataclass_from(cls, self.section(name), self.workspace / CONFIG_FILE, name)  # type: ignore[no-any-return]


def workspace_path(explicit: str | Path | None = None) -> Path:
    """The workspace folder: the argument, else ``TAILORMAIL_WORKSPACE``, else cwd."""
    chosen = explicit or os.environ.get("TAILORMAIL_WORKSPACE") or "."
    return Path(chosen).expanduser().resolve()


def default_database_url(workspace: Path) -> str:
    """The embedded default: one SQLite file inside the workspace."""
    return f"sqlite:///{workspace / DATABASE_FILE}"


def load_settings(workspace: str | Path | None = None) -> Settings:
    """Read ``tailormail.toml`` of a workspace and the environment into Settings."""
    root = workspace_path(workspace)
    config_path = root / CONFIG_FILE
    raw: dict[str, Any] = {}
    if config_path.exists():
        try:
            raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: {exc}", hint="fix the TOML syntax") from exc
    elif not root.exists():
        raise ConfigError(f"workspace {root} does not exist", hint="run `tailormail init DIR` first")
    workspace_table = _table(raw, "workspace", config_path)
    url = (
        os.environ.get("TAILORMAIL_DATABASE_URL")
        or _table(raw, "database", config_path).get("url")
        or default_database_url(root)
    )
    return Settings(
        workspace=root,
        database_url=str(url),
        timezone=str(workspace_table.get("timezone", "UTC")),
        name=str(workspace_table.get("name", root.name)),
        secret=_read_secret(root),
        events=_dataclass_from(EventNames, _table(raw, "events", config_path), config_path, "events"),
        limits=_dataclass_from(IngestLimits, _table(raw, "ingest", config_path), config_path, "ingest"),
        raw=raw,
    )


def _table(raw: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return value


def _dataclass_from(cls: Any, values: dict[str, Any], path: Path, section: str) -> Any:
    known = cls.__dataclass_fields__
    checked = dict(values)
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{path}: unknown key [{section}].{key}",
                hint=f"known keys: {', '.join(sorted(known))}",
            )
        checked[key] = _of_default_type(known[key], value, f"{path}: [{section}].{key}")
    return cls(**checked)


def _of_default_type(spec: Any, value: Any, where: str) -> Any:
    """``value`` if it has the type of the field's default (an int where a float is wanted becomes one)."""
    if spec.default is not MISSING:
        default = spec.default
    elif spec.default_factory is not MISSING:
        default = spec.default_factory()
    else:
        return value
    kind = type(default)
    if default is None:
        return value  # optional: any value the dataclass itself accepts
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where} must be {_a(kind)}, not {value!r}", hint=f"the default is {default!r}")
    return value


def _a(kind: type) -> str:
    name = {"str": "a string", "int": "a whole number", "float": "a number", "bool": "true or false"}.get(kind.__name__)
    return name or f"a {kind.__name__}"


def _read_secret(root: Path) -> str:
    """The workspace's signing secret: env first, else the secret file."""
    env = os.environ.get("TAILORMAIL_SECRET")
    if env:
        return env
    path = root / SECRET_FILE
    return path.read_text(encoding="utf-8").strip() if path.exists() else ""


def new_secret() -> str:
    """A fresh random signing secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)
