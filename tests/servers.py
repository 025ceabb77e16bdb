"""Real servers for the read-side tests: the query API as a process, SMTP on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support import TEST_ENV, start_cli, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
