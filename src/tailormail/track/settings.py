"""The ``[track]`` table of tailormail.toml: public URL, bot filtering, attribution, topics."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tailormail.config import CONFIG_FILE, Settings
from tailormail.errors import ConfigError


@dataclass(frozen=True)
class TrackSettings:
    """How hits are recorded and credited."""

    base_url: str = "http://127.0.0.1:8000"
    """The public URL of `tailormail serve`; tracking links point here."""
    automated_seconds: float = 10.0
    """An open or click this soon after delivery is a scanner or a proxy prefetch, not a person."""
    attribution_days: float = 5.0
    """A goal event this long after a click (else an open) is credited to the email."""
    goal_event: str = ""
    """The conversion event; default: the workspace's purchase event."""
    utm: dict[str, str] = field(default_factory=dict)
    """UTM parameters added to tracked links, e.g. {utm_source = "tailormail", utm_medium = "email"}."""
    batch_ms: float = 200.0
    """Hits are answered once the token verifies, journaled, and recorded in batches this often (ms).
    0: each open and click is recorded before it is answered (slower)."""
    topics: list[str] = field(default_factory=lambda: ["newsletter", "offers", "product_updates"])
    """Topics a person can unsubscribe from one by one on the preference page."""


def track_settings(settings: Settings) -> TrackSettings:
    """Read and check ``[track]``; a mistake names the key."""
    result = settings.table(TrackSettings, "track")
    if not result.goal_event:
        result = replace(result, goal_event=settings.events.purchase)
    if not result.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{CONFIG_FILE}: [track].base_url must start with http:// or https://")
    return result
