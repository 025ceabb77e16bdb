"""Real servers for the read-side tests: the query API as a process, SMTP on loopback."""

from __future__ import annotations

import email.policy
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx

from consumers.kafka.broker import free_port
from tests.support.processes import TEST_ENV, start_cli
from tests.support.waiting import wait_for


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def api_server(db_url: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``projectionist serve`` on a free port; yields its base URL, stops it on exit."""
    port = free_port()
    proc = start_cli(
        ["serve", "--address", f"127.0.0.1:{port}", "--database-url", db_url],
        env={**TEST_ENV, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("the query API to answer", lambda: proc.poll() is not None or _healthy(base))
        assert proc.poll() is None, f"serve exited: {proc.communicate(timeout=5)}"
        yield base
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
        assert "Traceback" not in err, err[-3000:]


@dataclass
class Received:
    """One message as the SMTP server accepted it."""

    envelope_from: str
    recipients: list[str]
    message: EmailMessage
    tls: bool = False
    authenticated: bool = False

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"]).strip()


@dataclass
class RecordingSmtp:
    """An aiosmtpd handler that keeps what it accepts and answers as a test tells it."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    #: address -> SMTP answer to RCPT TO (e.g. "550 5.1.1 no such user")
    reject: dict[str, str] = field(default_factory=dict)
    #: address -> how many times to answer RCPT TO with 451 before accepting
    tempfail: Counter[str] = field(default_factory=Counter)
    #: called with the number of messages received, after each accepted DATA
    on_message: Callable[[int], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if address in self.reject:
            return self.reject[address]
        with self.lock:
            if self.tempfail[address] > 0:
                self.tempfail[address] -= 1
                return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = BytesParser(policy=email.policy.default).parsebytes(envelope.content)
        assert isinstance(parsed, EmailMessage)
        received = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            parsed,
            # session.ssl: after STARTTLS; the transport's ssl_object: implicit TLS
            tls=session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            authenticated=bool(session.authenticated),
        )
        with self.lock:
            self.received.append(received)
            n = len(self.received)
        if self.on_message is not None:
            self.on_message(n)
        return "250 2.0.0 accepted"

    def message_ids(self) -> Counter[str]:
        with self.lock:
            return Counter(r.message_id for r in self.received)


@contextmanager
def smtp_server(**options: Any) -> Iterator[RecordingSmtp]:
    """A real SMTP server (aiosmtpd) on a free loopback port; ``options`` go to its Controller."""
    from aiosmtpd.controller import Controller

    handler = RecordingSmtp(port=free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port, **options)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()
