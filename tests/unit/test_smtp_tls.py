"""SMTP security settings against a real aiosmtpd server: STARTTLS, implicit TLS, login."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from projections.notifications.mail import MailUnavailable, SmtpConfig, SmtpMailer
from schemas.errors import ConfigurationError
from tests.support import missing
from tests.support.servers import RecordingSmtp, smtp_server

USER, PASSWORD = "mailer", "s3cret"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it through ca_file)."""
    if shutil.which("openssl") is None:
        missing("openssl is needed to make a test certificate")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*certificate)
    return ctx


def _authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=data.login == USER.encode() and data.password == PASSWORD.encode())


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "shop@example.test", "c@example.test", "hi"
    msg["Message-ID"] = "<tls-test@example.test>"
    msg.set_content("hello")
    return msg


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[RecordingSmtp]:
    with smtp_server(
        tls_context=_server_tls(certificate),
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticator,
    ) as server:
        yield server


def _send(config: SmtpConfig) -> None:
    session = SmtpMailer(config).connect()
    try:
        session.send(_message())
    finally:
        session.close()


def test_starttls_and_login_deliver(
    starttls_server: RecordingSmtp, certificate: tuple[Path, Path]
) -> None:
    """With smtp_starttls and credentials the message travels encrypted and authenticated."""
    _send(
        SmtpConfig(
            host="127.0.0.1",
            port=starttls_server.port,
            starttls=True,
            username=USER,
            password=PASSWORD,
            ca_file=str(certificate[0]),
            timeout_s=5,
        )
    )
    [got] = starttls_server.received
    assert got.tls
    assert got.authenticated
    assert got.message_id == "<tls-test@example.test>"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"password": "wrong"}, "bad credentials"),
        ({"ca_file": None}, "an untrusted certificate"),
    ],
)
def test_security_failures_are_retryable_and_send_nothing(
    starttls_server: RecordingSmtp,
    certificate: tuple[Path, Path],
    change: dict[str, Any],
    why: str,
) -> None:
    """Wrong password or untrusted certificate fail as MailUnavailable; nothing is sent."""
    config: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": starttls_server.port,
        "starttls": True,
        "username": USER,
        "password": PASSWORD,
        "ca_file": str(certificate[0]),
        "timeout_s": 5,
    }
    with pytest.raises(MailUnavailable):
        _send(SmtpConfig(**{**config, **change}))
    assert starttls_server.received == [], why


def test_credentials_without_auth_on_offer_are_a_configuration_error(
    starttls_server: RecordingSmtp, certificate: tuple[Path, Path]
) -> None:
    """Credentials but no STARTTLS, to a server that offers AUTH only after STARTTLS: a
    one-line configuration error, not an outage retried forever; nothing is sent."""
    config = SmtpConfig(
        host="127.0.0.1",
        port=starttls_server.port,
        starttls=False,
        username=USER,
        password=PASSWORD,
        ca_file=str(certificate[0]),
        timeout_s=5,
    )
    with pytest.raises(ConfigurationError, match="offers no AUTH") as caught:
        _send(config)
    assert PASSWORD not in str(caught.value)
    assert starttls_server.received == []


def test_implicit_tls(certificate: tuple[Path, Path]) -> None:
    """With smtp_ssl the session is TLS from the first byte (SMTPS)."""
    with smtp_server(ssl_context=_server_tls(certificate)) as server:
        _send(
            SmtpConfig(
                host="127.0.0.1",
                port=server.port,
                ssl=True,
                ca_file=str(certificate[0]),
                timeout_s=5,
            )
        )
        [got] = server.received
    assert got.tls


def test_password_never_in_repr() -> None:
    """The SMTP config's repr leaves the password out."""
    assert "s3cret" not in repr(SmtpConfig(username=USER, password=PASSWORD))
