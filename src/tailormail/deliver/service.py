"""Wiring delivery from a workspace: the transport, the DKIM signer, the worker task."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tailormail.config import Settings
from tailormail.deliver.headers import Finisher, Signer
from tailormail.deliver.sender import Sender
from tailormail.deliver.settings import DeliverSettings, deliver_settings
from tailormail.deliver.smtp import SmtpTransport
from tailormail.deliver.transport import MaildirTransport, Transport

if TYPE_CHECKING:
    from tailormail.runtime import Runtime

_SENDER = "deliver.sender"


def build_transport(settings: DeliverSettings, workspace: Path) -> Transport:
    """The configured transport: the workspace Maildir, or an SMTP connection pool."""
    if settings.transport == "maildir":
        return MaildirTransport(workspace / settings.maildir)
    return SmtpTransport(
        settings.host,
        settings.port,
        security=settings.security,
        username=settings.username,
        password=settings.password(),
        connections=settings.connections,
        timeout=settings.timeout_seconds,
    )


def build_signer(settings: DeliverSettings, workspace: Path) -> Signer | None:
    """The DKIM signer when a key is configured, else None."""
    key = settings.dkim_key(workspace)
    if key is None:
        return None
    domain = settings.dkim_domain or settings.domain
    if not domain:
        from tailormail.errors import ConfigError

        raise ConfigError("[deliver].dkim_domain (or domain) is required with dkim_key_file")
    return Signer(key, settings.dkim_selector, domain)


def finisher_for(settings: Settings) -> Finisher:
    """What journeys and campaigns pass to ``enqueue_many`` so mail is queued ready to send."""
    deliver = deliver_settings(settings)
    return Finisher(settings.secret, deliver.base_url, deliver.domain)


def open_sender(runtime: Runtime, transport: Transport | None = None) -> Sender:
    """A Sender for a workspace; ``transport`` overrides the configured one; outcomes come back as events."""
    from tailormail.track.delivery import recorder

    settings = deliver_settings(runtime.settings)
    root = runtime.settings.workspace
    return Sender(
        runtime.store,
        runtime.clock,
        settings,
        transport or build_transport(settings, root),
        secret=runtime.settings.secret,
        signer=build_signer(settings, root),
        on_recorded=recorder(runtime),
    )


def sender_for(runtime: Runtime) -> Sender:
    """The process's Sender, made once and kept so its connections and buckets persist."""
    return runtime.kept(_SENDER, lambda: open_sender(runtime))


def deliver_task(runtime: Runtime, now: datetime) -> int:
    """The worker task: send what is due; return how many outbox rows were handled."""
    return sender_for(runtime).run_round()
