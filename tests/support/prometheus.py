"""Observability test parts: Prometheus server, cuttable TCP proxy, in-process runner, HTTP gets."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from consumers.kafka.config import producer_config
from consumers.observability.exporter import observed_runner
from consumers.runtime.runner import ProjectionRunner
from consumers.runtime.stop import StopSignal
from consumers.settings.models import Settings, load_settings
from tests.support import TEST_ENV, missing, unique, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, *, timeout_s: float = 5.0) -> tuple[int, str]:
    """Status and body; connection failures count as status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


class PrometheusServer:
    """Debian's ``prometheus`` on a free loopback port with its own config and data dir."""

    def __init__(self, base: Path, *, targets: list[str], scrape_interval_s: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._base = base
        self._targets = targets
        self._interval = scrape_interval_s
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            missing("prometheus is not installed (make tools-prometheus installs it)")
        config = self._base / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML: no YAML library needed
                {
                    "global": {
                        "scrape_interval": f"{self._interval}s",
                        "evaluation_interval": f"{self._interval}s",
                    },
                    "scrape_configs": [
                        {
                            "job_name": "projectionist",
                            "static_configs": [{"targets": self._targets}],
                        }
                    ],
                }
            )
        )
        self._log = (self._base / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={self._base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.console.templates=/dev/null",  # Debian's defaults point into /etc
                "--web.console.libraries=/dev/null",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(
                "Prometheus to become ready",
                lambda: (
                    self._proc is not None
                    and (self._proc.poll() is not None or http_get(f"{self.url}/-/ready")[0] == 200)
                ),
                timeout_s=60,
                every_s=0.2,
            )
            if self._proc.poll() is not None:
                raise AssertionError(
                    f"prometheus exited: {(self._base / 'prometheus.log').read_text()}"
                )
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def query(self, promql: str) -> dict[str, float]:
        """Instant query → {label string: value} (empty when no series)."""
        status, body = http_get(
            f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        )
        assert status == 200, body
        data = json.loads(body)["data"]
        out: dict[str, float] = {}
        for row in data["result"]:
            labels = ",".join(f"{k}={v}" for k, v in sorted(row["metric"].items()))
            out[labels] = float(row["value"][1])
        return out


class TcpProxy:
    """Forwards a loopback port to ``upstream``; ``cut()`` drops every connection and
    refuses new ones (a database outage as the client sees it), ``restore()`` undoes it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._open = threading.Event()

    def __enter__(self) -> TcpProxy:
        self.restore()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cut()
        for t in self._threads:
            t.join(timeout=5)

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._open.set()
        self._spawn(self._accept_loop, listener)

    def cut(self) -> None:
        self._open.clear()
        for t in self._threads:
            if t.name == "proxy-accept":
                t.join(timeout=5)
        with self._lock:
            for s in self._sockets:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def _spawn(self, target: object, *args: object) -> None:
        name = "proxy-accept" if target == self._accept_loop else "proxy-pump"
        t = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        with listener:
            while self._open.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                try:
                    upstream = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    client.close()
                    continue
                client.settimeout(None)
                upstream.settimeout(None)
                with self._lock:
                    if not self._open.is_set():
                        client.close()
                        upstream.close()
                        return
                    self._sockets.update((client, upstream))
                self._spawn(self._pump, client, upstream)
                self._spawn(self._pump, upstream, client)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    with TcpProxy((host, port)) as proxy:
        yield proxy


SLOT = "blog_v1"


def publish_poison(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer(producer_config(Settings(bootstrap_servers=bootstrap).kafka))
    for i in range(count):
        producer.produce(topic, key=f"poison-{i}".encode(), value=b"\x00not avro at all")
    assert producer.flush(30) == 0


def settings_for(bootstrap: str, topic: str, db_url: str, **overrides: Any) -> Settings:
    env = {k.removeprefix("PROJECTIONIST_").lower(): v for k, v in TEST_ENV.items()}
    return load_settings(
        **env,
        bootstrap_servers=bootstrap,
        blog_topic=topic,
        group_prefix=unique("obs"),
        database_url=db_url,
        metrics_address=f"127.0.0.1:{free_port()}",
        **overrides,
    )


@contextmanager
def running(
    settings: Settings, *, consumer_factory: Any = None
) -> Iterator[tuple[ProjectionRunner, str]]:
    """An in-process runner on its own thread, with its endpoints served; stopped on exit."""
    stop = StopSignal()
    errors: list[BaseException] = []
    factory = consumer_factory or Consumer  # fault injection: wrap the Kafka client
    with observed_runner(settings, "blog", stop=stop, consumer_factory=factory) as runner:

        def loop() -> None:
            try:
                runner.run_forever()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
                errors.append(exc)

        thread = threading.Thread(target=loop, name="runner", daemon=True)
        thread.start()
        try:
            yield runner, f"http://{settings.observability.metrics_address}"
        finally:
            stop.set()
            thread.join(timeout=60)
    assert not thread.is_alive(), "runner did not stop"
    if errors:
        raise errors[0]


class FreezableConsumer:
    """A real Consumer whose ``consume()`` can be made to return nothing — the client
    that keeps its group membership (librdkafka heartbeats and prefetches in the
    background) but stopped handing messages to the application."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._consumer = Consumer(conf)
        self._frozen = False
        self._thawed = threading.Event()

    def freeze(self) -> None:
        self._thawed.clear()
        self._frozen = True

    def thaw(self) -> None:
        self._frozen = False
        self._thawed.set()

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        if self._frozen:
            self._thawed.wait(timeout)  # the fault: a poll that yields nothing
            return []
        return list(self._consumer.consume(num_messages, timeout))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)
