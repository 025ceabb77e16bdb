"""The HTTP side of observability: ``/metrics``, ``/healthz`` (liveness), ``/readyz``,
and ``/status`` (the ``status --json`` document; ``?projection=blog`` to narrow it).

A stdlib threading server on its own daemon threads: a probe never waits for the
poll loop, and a slow database ping in ``/readyz`` never delays ``/healthz``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from consumers.observability.health import Verdict
from schemas.errors import ConfigurationError, ProjectionistError

__all__ = ["ObservabilityServer", "Probe", "StatusSource", "parse_address"]


class Probe(Protocol):
    """What the endpoints ask: a projection's health, or a service's (relay, API)."""

    @property
    def name(self) -> str: ...
    def liveness(self) -> Verdict: ...
    def readiness(self) -> Verdict: ...


#: the ``status --json`` document for some projections (None: all of them); raises
#: ``LookupError`` for an unknown projection, ``ProjectionistError`` when it cannot be built
StatusSource = Callable[[Sequence[str] | None], dict[str, Any]]

log = structlog.get_logger(__name__)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port`` → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65_535:
        raise ConfigurationError(
            f"metrics address {address!r} is not host:port (e.g. 0.0.0.0:9100 or :9100)"
        )
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - a pod serves its probes


class ObservabilityServer:
    """Serves one registry and the probes of every projection in the process."""

    def __init__(
        self,
        *,
        address: str,
        registry: CollectorRegistry,
        probes: Sequence[Probe],
        status: StatusSource | None = None,
    ) -> None:
        self._host, self._port = parse_address(address)
        self._registry = registry
        self._probes = probes
        self._status = status
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.server_address[1])

    def start(self) -> None:
        handler = _handler(self._registry, self._probes, self._status)
        try:
            server_class = _QuietServerV6 if ":" in self._host else _QuietServer
            self._server = server_class((self._host, self._port), handler)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on {self._host}:{self._port}: {exc.strerror or exc}"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="observability-http", daemon=True
        )
        self._thread.start()
        log.info("observability endpoints listening", host=self._host, port=self.port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A probe that gave up (client timeout) leaves a broken pipe: not worth a traceback.
        log.debug("observability request failed", client=str(client_address))


class _QuietServerV6(_QuietServer):
    address_family = socket.AF_INET6


def _verdicts(probes: Sequence[Probe], check: str) -> tuple[bool, str]:
    results: list[tuple[str, Verdict]] = [(p.name, getattr(p, check)()) for p in probes]
    ok = bool(results) and all(v.ok for _, v in results)
    lines = [f"{name}: {'ok' if v.ok else 'FAIL'} ({v.reason})" for name, v in results]
    return ok, "\n".join(lines or ["no projection running"]) + "\n"


_JSON = "application/json"
Answer = tuple[int, str, bytes]


def _status_answer(status: StatusSource, query: dict[str, list[str]]) -> Answer:
    """The document as JSON; the query API's error shape when it cannot be built."""
    try:
        doc = status(query.get("projection") or None)
        return 200, _JSON, json.dumps(doc).encode()
    except LookupError as exc:
        detail = str(exc.args[0]) if exc.args else str(exc)
        return 404, _JSON, json.dumps({"error": "unknown_projection", "detail": detail}).encode()
    except ProjectionistError as exc:  # database or broker away, or no Kafka configured
        detail = f"status unavailable: {type(exc).__name__}: {exc}"
        return 503, _JSON, json.dumps({"error": "unavailable", "detail": detail}).encode()


def _handler(
    registry: CollectorRegistry,
    probes: Sequence[Probe],
    status: StatusSource | None,
) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[dict[str, list[str]]], Answer]] = {}

    def metrics(_query: dict[str, list[str]]) -> Answer:
        return 200, CONTENT_TYPE_LATEST, generate_latest(registry)

    def probe(check: str) -> Callable[[dict[str, list[str]]], Answer]:
        def answer(_query: dict[str, list[str]]) -> Answer:
            ok, text = _verdicts(probes, check)
            return (200 if ok else 503), "text/plain; charset=utf-8", text.encode()

        return answer

    routes["/metrics"] = metrics
    routes["/healthz"] = probe("liveness")
    routes["/readyz"] = probe("readiness")
    if status is not None:
        routes["/status"] = lambda query: _status_answer(status, query)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            route = routes.get(url.path)
            if route is None:
                status, ctype, body = 404, "text/plain", b"not found\n"
            else:
                status, ctype, body = route(parse_qs(url.query))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the logs

    return Handler
