"""Run what a rendered overlay ships the way a kubelet would, on this machine.

For one container of a Deployment, StatefulSet, Job or CronJob: its ``args`` after the
image's entrypoint (``projectionist``), the environment the manifest gives it (the
ConfigMap of ``envFrom``, literal ``env`` values, ``fieldRef: metadata.name`` as the pod
name), Secret and ConfigMap volumes written to a directory per pod (values from the test,
never from the repository), its probes asked at the declared port and path, SIGTERM with
``terminationGracePeriodSeconds`` enforced.

What differs from a cluster, and why (the only rewrites):

* every ``containerPort`` gets a free loopback port, and an environment value
  ``host:<containerPort>`` binds that port instead (``0.0.0.0:9400`` → ``127.0.0.1:N``):
  every pod here shares one network namespace, where two ``:9400`` would collide;
* a mount path in an environment value points at the pod's directory instead;
* ``overrides`` (broker, SMTP server) replace cluster DNS names with the test's parts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers.kafka.broker import free_port
from tests.support import PROJECTIONIST
from tests.support.prometheus import http_get

Doc = dict[str, Any]


def pod_spec(doc: Doc) -> Doc:
    kind = doc["kind"]
    if kind == "CronJob":
        spec: Doc = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        spec = doc["spec"]["template"]["spec"]
    return spec


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@dataclass
class Pod:
    """One container of a workload, started as a process."""

    name: str
    args: list[str]
    env: dict[str, str]
    ports: dict[str, int]  # containerPort name → local port
    spec: Doc
    container: Doc
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    stopped_in_s: float | None = None
    _log: Any = field(default=None, repr=False)

    def start(self) -> Pod:
        self._log = (self.root / "output.log").open("wb")
        self.proc = subprocess.Popen(
            [PROJECTIONIST, *self.args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def output(self) -> str:
        return (self.root / "output.log").read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def probe(self, kind: str) -> int:
        """The status a kubelet's httpGet probe gets (0: connection failed)."""
        get = self.container[f"{kind}Probe"]["httpGet"]
        port = get["port"]
        local = self.ports[port] if isinstance(port, str) else self.ports[_port_name(self, port)]
        timeout = float(self.container[f"{kind}Probe"].get("timeoutSeconds", 1))
        return http_get(f"http://127.0.0.1:{local}{get['path']}", timeout_s=timeout)[0]

    def url(self, port: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}"

    def wait(self, timeout_s: float) -> int:
        """A Job's container: wait for it to finish; its exit code."""
        assert self.proc is not None
        try:
            self.exit_code = self.proc.wait(timeout=timeout_s)
        finally:
            if self._log is not None:
                self._log.close()
        return self.exit_code

    def kill(self) -> None:
        """SIGKILL: the container dies (OOM, node loss)."""
        assert self.proc is not None
        self.proc.kill()
        self.exit_code = self.proc.wait()
        if self._log is not None:
            self._log.close()

    def terminate(self) -> int:
        """SIGTERM, then SIGKILL once terminationGracePeriodSeconds have passed."""
        assert self.proc is not None
        grace = float(self.spec.get("terminationGracePeriodSeconds", 30))
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait()
            self.exit_code = -9
        self.stopped_in_s = time.monotonic() - started
        if self._log is not None:
            self._log.close()
        return self.exit_code


def _port_name(pod: Pod, number: int) -> str:
    for p in pod.container.get("ports", []):
        if p["containerPort"] == number:
            return str(p["name"])
    raise AssertionError(f"{pod.name}: probe port {number} is not a containerPort")


class Kubelet:
    """Builds pods from rendered documents; remembers them to stop what is left."""

    def __init__(
        self,
        docs: list[Doc],
        base: Path,
        *,
        secrets: Mapping[str, Mapping[str, str]],
        overrides: Mapping[str, str],
    ) -> None:
        self.docs = docs
        self.base = base
        self.secrets = secrets
        self.overrides = overrides
        self.pods: list[Pod] = []

    def pod(self, kind: str, name: str, *, ordinal: int = 0, args: list[str] | None = None) -> Pod:
        """The pod ``<name>-<ordinal>`` of a workload (not started)."""
        doc = find(self.docs, kind, name)
        spec = pod_spec(doc)
        (container,) = spec["containers"]
        pod_name = f"{name}-{ordinal}"
        root = self.base / pod_name
        n = 0
        while root.exists():  # a second pod of the same name (a restart, another Job run)
            n += 1
            root = self.base / f"{pod_name}.{n}"
        root.mkdir(parents=True)
        mounts = self._volumes(spec, container, root)
        ports = {p["name"]: free_port() for p in container.get("ports", [])}
        by_number = {p["containerPort"]: ports[p["name"]] for p in container.get("ports", [])}
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(root)}
        if os.environ.get("CI"):
            env["CI"] = os.environ["CI"]
        for source in container.get("envFrom", []):
            env.update(find(self.docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[item["name"]] = pod_name
            else:
                raise AssertionError(f"{name}: env {item['name']} has a source not modelled")
        env.update(self.overrides)
        for key, value in list(env.items()):
            env[key] = _rewrite(value, mounts, by_number)
        pod = Pod(
            name=pod_name,
            args=list(args if args is not None else container.get("args", [])),
            env=env,
            ports=ports,
            spec=spec,
            container=container,
            root=root,
        )
        self.pods.append(pod)
        return pod

    def _volumes(self, spec: Doc, container: Doc, root: Path) -> dict[str, Path]:
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts: dict[str, Path] = {}
        for m in container.get("volumeMounts", []):
            volume = volumes[m["name"]]
            local = root / "volumes" / m["name"]
            local.mkdir(parents=True, exist_ok=True)
            mounts[m["mountPath"]] = local
            if "secret" in volume:
                secret = volume["secret"]
                # a generated Secret's name carries kustomize's hash suffix
                data = self.secrets.get(re.sub(r"-[a-z0-9]{10}$", "", secret["secretName"]))
                if data is None:
                    assert secret.get("optional"), f"Secret {secret['secretName']} is required"
                    continue
                items = secret.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (local / item["path"]).write_text(data[item["key"]])
            elif "configMap" in volume:
                data = find(self.docs, "ConfigMap", volume["configMap"]["name"])["data"]
                for key, value in data.items():
                    (local / key).write_text(value)
        return mounts

    def running(self) -> Iterator[Pod]:
        return (p for p in self.pods if p.alive())

    def stop_all(self) -> None:
        for pod in list(self.running()):
            pod.terminate()


def _rewrite(value: str, mounts: Mapping[str, Path], ports: Mapping[int, int]) -> str:
    for mount, local in mounts.items():
        if value.startswith(mount + "/"):
            value = str(local) + value[len(mount) :]
    match = re.fullmatch(r"(\[?[\w.:]*\]?):(\d+)", value)
    if match and int(match.group(2)) in ports:
        return f"127.0.0.1:{ports[int(match.group(2))]}"
    return value
