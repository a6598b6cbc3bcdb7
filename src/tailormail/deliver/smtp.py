"""The SMTP transport: a pool of aiosmtplib connections (STARTTLS or TLS, AUTH)."""

from __future__ import annotations

import asyncio
import contextlib
import re
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

# An address that can go on a MAIL or RCPT line as it is: ASCII, no space, control character, <, > or quote.
_PLAIN_ADDRESS = re.compile(r'[^\x00-\x20<>"\x7f-\U0010ffff]+@[^\x00-\x20<>"\x7f-\U0010ffff]+\Z')


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
            if client.is_ehlo_or_helo_needed or not _plain(envelope):
                _, response = await client.sendmail(envelope.sender, [envelope.recipient], envelope.data)
            else:
                async with asyncio.timeout(self.timeout):  # one timer per message, not one per command
                    response = await _transaction(client, envelope)
            return SendResult(250, response), True
        except aiosmtplib.SMTPRecipientsRefused as error:
            refused = error.recipients[0]
            return SendResult(refused.code, refused.message), client.is_connected
        except aiosmtplib.SMTPRecipientRefused as error:
            return SendResult(error.code, error.message), client.is_connected
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


def _plain(envelope: Envelope) -> bool:
    return bool(_PLAIN_ADDRESS.match(envelope.sender) and _PLAIN_ADDRESS.match(envelope.recipient))


async def _transaction(client: aiosmtplib.SMTP, envelope: Envelope) -> str:
    """MAIL, RCPT and DATA for one plain-address recipient on a greeted connection; the DATA reply.

    What ``sendmail`` does, minus its per-message work this sender has done
    already: the addresses were checked when queued (``_plain`` again here), so
    they are not parsed four times over with ``email.utils``, and the bytes are
    CRLF already, so SIZE is their length.  On that path ``sendmail`` costs more
    CPU than everything else this sender does per message.
    """
    size = (b"SIZE=%d" % len(envelope.data),) if client.supports_extension("size") else ()
    try:
        mail_from = b"FROM:<" + envelope.sender.encode("ascii") + b">"
        reply = await client.execute_command(b"MAIL", mail_from, *size, timeout=None)
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, envelope.sender)
        reply = await client.execute_command(b"RCPT", b"TO:<" + envelope.recipient.encode("ascii") + b">", timeout=None)
        if reply.code not in (250, 251):
            raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, envelope.recipient)
        return (await client.data(envelope.data, timeout=None)).message
    except aiosmtplib.SMTPResponseException:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await client.rset(timeout=None)  # leave the connection ready for the next message, as sendmail does
        raise
