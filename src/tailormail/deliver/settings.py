"""The ``[deliver]`` table of tailormail.toml: transport, limits, retries, headers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tailormail.config import CONFIG_FILE, Settings
from tailormail.errors import ConfigError

TRANSPORTS = ("maildir", "smtp")
SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True)
class DeliverSettings:
    """How mail leaves: every key of ``[deliver]``, with the defaults a newcomer needs."""

    transport: str = "maildir"
    """maildir (the workspace's outbox/ folder, to open what was sent) or smtp."""
    maildir: str = "outbox"
    """The Maildir folder, relative to the workspace."""
    host: str = "127.0.0.1"
    port: int = 25
    security: str = "starttls"
    """starttls (upgrade when offered; required when a username is set), tls (implicit, port 465) or none."""
    username: str = ""
    password_env: str = "TAILORMAIL_SMTP_PASSWORD"
    """The environment variable holding the SMTP password (never written in the file)."""
    connections: int = 16
    """Pooled SMTP connections; more than the server allows gets 421s, fewer limits throughput."""
    timeout_seconds: float = 30.0
    """A server silent this long counts as a temporary failure, so one stuck connection cannot stall the queue."""
    sender: str = ""
    """The envelope sender (MAIL FROM, where bounces go); default: each message's From address."""
    domain: str = ""
    """The sending domain for the unsubscribe mailto and DKIM; default: each message's From domain."""
    base_url: str = "http://127.0.0.1:8000"
    """The public URL of `tailormail serve`, for the one-click unsubscribe link."""
    batch_size: int = 200
    """Rows claimed per transaction; bounds how much a killed worker leaves for its lease to expire."""
    lease_seconds: float = 120.0
    """A claimed row is taken over by another worker after this; keep it well above the time to send
    two batches (the next one is claimed while half of one is still queued), or slow sends get
    redelivered (same Message-ID, but wasted)."""
    max_batches_per_round: int = 50
    """Batches one worker round sends before yielding to the other worker tasks."""
    max_attempts: int = 8
    """Temporary failures after this many attempts mark the message failed."""
    retry_base_seconds: float = 60.0
    retry_max_seconds: float = 6 * 3600.0
    rate_per_second: float = 0.0
    """Messages per second overall (0: no limit); protects your relay's sending quota."""
    burst: int = 100
    domain_rate_per_second: float = 0.0
    """Messages per second to one recipient domain (0: no limit); big mailbox providers throttle bursts."""
    domain_burst: int = 20
    dkim_key_file: str = ""
    """PEM private key (relative to the workspace); empty: no DKIM signature."""
    dkim_selector: str = ""
    dkim_domain: str = ""
    """The d= of the signature; default: ``domain``, else the From domain."""

    def password(self) -> str | None:
        """The SMTP password from the environment, or None."""
        return os.environ.get(self.password_env) or None

    def dkim_key(self, workspace: Path) -> bytes | None:
        """The DKIM private key bytes, or None when signing is off."""
        if not self.dkim_key_file:
            return None
        path = workspace / self.dkim_key_file
        if not path.is_file():
            raise ConfigError(f"[deliver].dkim_key_file {path} does not exist", hint="generate a key or unset it")
        return path.read_bytes()


def deliver_settings(settings: Settings) -> DeliverSettings:
    """Read and check ``[deliver]``; every mistake names the key and what is allowed."""
    result = settings.table(DeliverSettings, "deliver")
    for key, allowed in (("transport", TRANSPORTS), ("security", SECURITY)):
        if getattr(result, key) not in allowed:
            raise ConfigError(f"{CONFIG_FILE}: [deliver].{key} must be one of {', '.join(allowed)}")
    if result.dkim_key_file and not result.dkim_selector:
        raise ConfigError(f"{CONFIG_FILE}: [deliver].dkim_selector is required with dkim_key_file")
    if result.batch_size < 1 or result.connections < 1 or result.lease_seconds <= 0:
        raise ConfigError(f"{CONFIG_FILE}: [deliver] batch_size, connections and lease_seconds must be positive")
    return result
