"""Slow clients against the shipped servers: headers and bodies have deadlines.

Both `projectionist serve` and `projectionist serve-commands` run as processes with a
1 s header deadline and a 1 s body deadline. Connections that trickle their headers are
closed after the deadline however often they send a byte; a body that stalls answers
408 and closes; the servers keep answering everyone else meanwhile.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from consumers.kafka.broker import free_port
from tests.support import TEST_ENV, start_cli, wait_for

DEADLINES = {"PROJECTIONIST_HTTP_HEADER_TIMEOUT_S": "1", "PROJECTIONIST_HTTP_BODY_TIMEOUT_S": "1"}
SLOW_CONNECTIONS = 60


@pytest.fixture(scope="module", params=["serve", "serve-commands"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    port = free_port()
    db = f"sqlite:///{tmp_path_factory.mktemp('slow') / 'db.sqlite'}"
    env = {**TEST_ENV, **DEADLINES, "PROJECTIONIST_DATABASE_URL": db}
    proc = start_cli([request.param, "--address", f"127.0.0.1:{port}"], env=env)

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return proc.poll() is not None

    try:
        wait_for(f"{request.param} to answer", healthy, timeout_s=30)
        assert proc.poll() is None, proc.communicate(timeout=5)[1][-2000:]
        yield request.param, port
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
        assert "Traceback" not in err, err[-3000:]


def _closed(sock: socket.socket) -> bool:
    """True once the server has closed ``sock`` (EOF or reset)."""
    try:
        return sock.recv(4096) == b""
    except (BlockingIOError, TimeoutError):
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_trickled_headers_are_cut_off_at_the_deadline(server: tuple[str, int]) -> None:
    """60 connections sending a header byte every 0.2 s are all closed within ~1 s of the deadline; /healthz answers meanwhile."""
    _name, port = server
    socks = []
    for _ in range(SLOW_CONNECTIONS):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        socks.append(s)
    started = time.monotonic()
    open_ = set(range(len(socks)))
    try:
        while open_ and time.monotonic() - started < 6:
            for i in list(open_):
                if _closed(socks[i]):
                    open_.discard(i)
                    continue
                with contextlib.suppress(BlockingIOError, ConnectionResetError, BrokenPipeError):
                    socks[i].send(b"X")  # one more byte of a never-ending header
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            time.sleep(0.2)
        took = time.monotonic() - started
    finally:
        for s in socks:
            s.close()
    assert not open_, f"{len(open_)} slow connections still open after 6 s"
    assert took < 3.5, f"closed only after {took:.1f}s (deadline 1 s)"


def test_a_stalled_body_answers_408_and_closes(server: tuple[str, int]) -> None:
    """A request that promises 100 body bytes and sends 5 gets 408 {"error","detail"} after ~1 s (or, where nothing reads the body, its normal answer)."""
    name, port = server
    path = b"/posts" if name == "serve-commands" else b"/tags"
    method = b"POST" if name == "serve-commands" else b"GET"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"ti'
        )
        started = time.monotonic()
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        took = time.monotonic() - started
    head = answer.split(b"\r\n", 1)[0]
    if name == "serve-commands":
        assert head == b"HTTP/1.1 408 Request Timeout", answer[:300]
        assert b'"error":"request_timeout"' in answer.replace(b" ", b""), answer[:300]
        assert 0.8 < took < 4, took
    else:
        # GET /tags never reads a body: it answers at once; the connection still closes
        assert head.startswith(b"HTTP/1.1 "), answer[:300]
