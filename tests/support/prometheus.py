"""A real Prometheus server for the observability tests, and plain HTTP gets."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from consumers.kafka.broker import free_port
from tests.support.waiting import missing, wait_for


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

    def __init__(
        self,
        base: Path,
        *,
        targets: list[str] | None = None,
        scrape_interval_s: int = 1,
        config: dict[str, Any] | None = None,
        flags: list[str] | None = None,
    ) -> None:
        """``config``: a whole configuration (e.g. the shipped one, its targets replaced)
        instead of one job over ``targets``; ``flags``: more command-line flags."""
        self._flags = flags or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._base = base
        self._targets = targets or []
        self._interval = scrape_interval_s
        self._config = config
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            missing("prometheus is not installed (make tools-prometheus installs it)")
        config = self._base / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML: no YAML library needed
                self._config
                or {
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
                "--web.enable-lifecycle",  # POST /-/reload after a target change
                *self._flags,
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

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert pending or firing now (``labels``, ``state``)."""
        status, body = http_get(f"{self.url}/api/v1/alerts")
        assert status == 200, body
        alerts: list[dict[str, Any]] = json.loads(body)["data"]["alerts"]
        return alerts

    def firing(self) -> set[str]:
        return {a["labels"]["alertname"] for a in self.alerts() if a["state"] == "firing"}

    def query(self, promql: str, *, at: float | None = None) -> dict[str, float]:
        """Instant query (now, or at the Unix time ``at``) → {label string: value} (empty
        when no series)."""
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        status, body = http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}")
        assert status == 200, body
        data = json.loads(body)["data"]
        out: dict[str, float] = {}
        for row in data["result"]:
            labels = ",".join(f"{k}={v}" for k, v in sorted(row["metric"].items()))
            out[labels] = float(row["value"][1])
        return out
