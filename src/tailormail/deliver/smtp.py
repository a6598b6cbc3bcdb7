"""The SMTP transport: a pool of aiosmtplib connections (STARTTLS or TLS, AUTH)."""

from __future__ import annotations

import asyncio
import ssl

import aiosmtplib

from tailormail.deliver.transport import Envelope, SendResult

# Errors about our own session (login, sender, greeting), not about the recipient:
# a 5xx here means misconfiguration, so they retry instead of bouncing the address.
_SESSION_ERRORS = (
    aiosmtplib.SMTPAuthenticationError,
    aiosmtplib.SMTPSenderRefused,
    aiosmtplib.SMTPHeloError,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPNotSupported,
)


class SmtpTransport:
    """Sends over up to ``connections`` reused SMTP connections at once."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        username: str = "",
        password: str | None = None,
        connections: int = 16,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.size, self.timeout, self.tls_context = connections, timeout, tls_context
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots: asyncio.Semaphore | None = None

    def _client(self) -> aiosmtplib.SMTP:
        # With a username, STARTTLS is required so a password never crosses in clear;
        # without one it is used whenever the server offers it.
        start_tls: bool | None = {"none": False, "tls": False}.get(self.security, True if self.username else None)
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username or None,
            password=self.password if self.username else None,
            use_tls=self.security == "tls",
            start_tls=start_tls,
            timeout=self.timeout,
            tls_context=self.tls_context,
        )

    async def send(self, envelope: Envelope) -> SendResult:
        """Send one message on a pooled connection; turn every failure into a reply code."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            client = self._idle.pop() if self._idle else self._client()
            result, healthy = await self._deliver(client, envelope)
            if healthy:
                self._idle.append(client)
            else:
                client.close()
            return result

    async def _deliver(self, client: aiosmtplib.SMTP, envelope: Envelope) -> tuple[SendResult, bool]:
        try:
            if not client.is_connected:
                await client.connect()
            _, response = await client.sendmail(envelope.sender, [envelope.recipient], envelope.data)
            return SendResult(250, response), True
        except aiosmtplib.SMTPRecipientsRefused as error:
            refused = error.recipients[0]
            return SendResult(refused.code, refused.message), client.is_connected
        except _SESSION_ERRORS as error:
            code = getattr(error, "code", 0)
            return SendResult(min(code, 499) if code >= 500 else code, f"{type(error).__name__}: {error}"), False
        except aiosmtplib.SMTPDataError as error:  # the content was refused, not the address
            return SendResult(error.code, error.message, about_recipient=False), client.is_connected
        except aiosmtplib.SMTPResponseException as error:
            return SendResult(error.code, error.message), client.is_connected
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            return SendResult(0, f"{type(error).__name__}: {error}"), False

    async def close(self) -> None:
        """Say QUIT on every idle connection."""
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
