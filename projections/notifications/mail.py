"""Sending e-mail: a small protocol, and its SMTP implementation on the standard library.

The delivery code talks to a :class:`Mailer` only, so unit tests pass a fake and the
integration tests a real SMTP server on loopback. SMTP answers are sorted into the one
exception tree:

* :class:`MailUnavailable` (retryable): cannot connect, TLS or login failed, the
  connection dropped, or a 4xx answer (greylisting, mailbox busy). Retried with backoff.
* :class:`MailRejected` (permanent): a 5xx answer to the recipient or the message
  (no such mailbox, policy). Recorded as failed, never retried.
* :class:`~schemas.errors.ConfigurationError`: credentials for a server that offers no
  AUTH, an SMTP CA file that does not load. The process stops with a one-line error.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from schemas.errors import ConfigurationError, ProjectionistError, RetryableError

__all__ = [
    "MailConnection",
    "MailRejected",
    "MailUnavailable",
    "Mailer",
    "SmtpConfig",
    "SmtpMailer",
]


class MailUnavailable(RetryableError):
    """The mail server cannot take the message now; the same message may succeed later."""


class MailRejected(ProjectionistError):
    """The mail server refused this message or recipient for good (a 5xx answer)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code} {detail}")
        self.code = code


class MailConnection(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand one message over; return only once the server accepted it."""

    def close(self) -> None: ...


class Mailer(Protocol):
    def connect(self) -> MailConnection:
        """Open a session; raise :class:`MailUnavailable` when the server cannot be reached."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 25
    starttls: bool = False  # plain connect, then STARTTLS (port 587)
    ssl: bool = False  # implicit TLS from the first byte (port 465)
    username: str | None = None
    password: str | None = None
    timeout_s: float = 30.0
    ca_file: str | None = None  # extra CA bundle (PEM) to trust; None: the system store

    def __repr__(self) -> str:  # never show the password
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port}, starttls={self.starttls}, "
            f"ssl={self.ssl}, username={self.username!r})"
        )


class SmtpMailer:
    """Sends over SMTP with ``smtplib``; TLS certificates and host names are always verified."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def connect(self) -> MailConnection:
        c = self.config
        try:
            if c.ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout_s, context=self._tls()
                )
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
            try:
                if c.starttls:
                    smtp.starttls(context=self._tls())
                if c.username:
                    smtp.login(c.username, c.password or "")
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPNotSupportedError:
            # Credentials for a server that offers no AUTH: retrying cannot help (many
            # servers offer AUTH only after STARTTLS). A mistake in the settings.
            raise ConfigurationError(
                f"SMTP {c.host}:{c.port} offers no AUTH but a username is set: enable "
                "PROJECTIONIST_SMTP_STARTTLS / _SSL, or unset PROJECTIONIST_SMTP_USERNAME"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
            raise MailUnavailable(f"SMTP {c.host}:{c.port}: {_describe(exc)}") from exc
        return _SmtpConnection(smtp)

    def _tls(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.config.ca_file)
        except (OSError, ValueError) as exc:  # missing, unreadable or not PEM: for good
            raise ConfigurationError(
                f"PROJECTIONIST_SMTP_CA_FILE: cannot load {self.config.ca_file}: "
                f"{type(exc).__name__}"
            ) from None


class _SmtpConnection:
    def __init__(self, smtp: smtplib.SMTP) -> None:
        self._smtp = smtp

    def send(self, message: EmailMessage) -> None:
        try:
            self._smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _sorted(code, text) from exc
        except smtplib.SMTPSenderRefused as exc:
            # Our own From address: a configuration matter, not this customer's fault.
            detail = f"sender refused: {exc.smtp_code} {_text(exc.smtp_error)}"
            raise MailUnavailable(detail) from exc
        except smtplib.SMTPResponseException as exc:
            raise _sorted(exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailUnavailable(f"SMTP session failed: {_describe(exc)}") from exc

    def close(self) -> None:
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()


def _sorted(code: int, text: bytes | str) -> MailRejected | MailUnavailable:
    if 500 <= code < 600:
        return MailRejected(code, _text(text))
    return MailUnavailable(f"{code} {_text(text)}")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()
