"""The contenders of issue 15, each in a process of its own, on the same topic's bytes.

* Projectionist through its command line: ``projectionist consume blog --drain`` and
  ``projectionist rebuild blog`` (or ``orders``), with the settings ``projectionist
  broker`` prints for the embedded broker (bench.cli_probe adds the process's peak RSS);
* the hand-written COPY + merge loop (bench.handwritten; bench.handwritten_orders);
* Quix Streams in its own virtualenv (bench.quix_peer, pinned by quix-requirements.txt).

Each returns the worker's result dict: ``events``, ``active_s`` (first message — or,
for the CLI's consume, the partition assignment — to the last commit), ``total_s``
(process start to exit) and ``peak_rss_mb``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from consumers.kafka.broker import EMBEDDED_CONSUMER_SETTINGS

__all__ = ["ensure_quix", "handwritten", "projectionist", "quix"]

ROOT = Path(__file__).resolve().parent.parent
QUIX_VENV = ROOT / ".venv-quix"


def _libpq(url: str) -> str:
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)


def _result(out: str, what: str) -> dict[str, Any]:
    for line in out.splitlines():
        if line.startswith("RESULT "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return parsed
    raise RuntimeError(f"{what} ended without a result:\n{out[-3000:]}")


def ensure_quix() -> Path:
    """The Quix virtualenv's python, made from the pinned requirements on first use."""
    python = QUIX_VENV / "bin" / "python"
    stamp = QUIX_VENV / ".installed-stamp"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        reqs = ROOT / "bench" / "quix-requirements.txt"
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(reqs)], check=True)
        stamp.touch()
    return python


def handwritten(cfg: dict[str, Any], module: str = "bench.handwritten") -> dict[str, Any]:
    """The hand-written loop: ``bench.handwritten`` (posts) or ``bench.handwritten_orders``."""
    cfg = {**cfg, "libpq_url": _libpq(cfg["database_url"])}
    out = subprocess.run(
        [sys.executable, "-m", module, json.dumps(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return _result(out.stdout + out.stderr, "the hand-written loop")


def quix(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg = {**cfg, "libpq_url": _libpq(cfg["database_url"])}
    out = subprocess.run(
        [str(ensure_quix()), str(ROOT / "bench" / "quix_peer.py"), json.dumps(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return _result(out.stdout + out.stderr, "the Quix Streams peer")


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (a rebuild's workers), in kB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            for task in Path(f"/proc/{p}/task").glob("*/children"):
                todo.extend(int(c) for c in task.read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
        rss = (int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:"))
        total += next(rss, 0)
    return total


def projectionist(cfg: dict[str, Any], command: str, projection: str = "blog") -> dict[str, Any]:
    """``projectionist consume <projection> --drain`` or ``projectionist rebuild
    <projection>``, measured; ``cfg["topic"]`` is that projection's source topic."""
    env = {
        **os.environ,
        **{f"PROJECTIONIST_{k.upper()}": str(v) for k, v in EMBEDDED_CONSUMER_SETTINGS.items()},
        "PROJECTIONIST_BOOTSTRAP_SERVERS": cfg["bootstrap"],
        "PROJECTIONIST_DATABASE_URL": cfg["database_url"],
        f"PROJECTIONIST_{projection.upper()}_TOPIC": cfg["topic"],
        "PROJECTIONIST_GROUP_PREFIX": cfg["group_prefix"],
        "PROJECTIONIST_LOG_FORMAT": "json",
    }
    args = ["consume", projection, "--drain"] if command == "consume" else ["rebuild", projection]
    args += cfg.get("cli_args", [])  # experiments, e.g. ["--batch-max-messages", "5000"]
    command_line = [sys.executable, "-m", "bench.cli_probe", *args, "--json"]
    profile_dir = os.environ.get("BENCH_PROFILE")  # a folder: a py-spy raw profile per run
    if profile_dir:
        db = cfg["database_url"].split(":", 1)[0].split("+")[0]
        what = command if projection == "blog" else f"{command}-{projection}"
        out_file = Path(profile_dir) / f"cli-{what}-{db}-{uuid.uuid4().hex[:4]}.txt"
        out_file.parent.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).with_name("py-spy")
        command_line = [str(spy), "record", "-r", "250", "-f", "raw", "-o", str(out_file), "--"]
        command_line += [sys.executable, "-m", "bench.cli_probe", *args, "--json"]
    started = time.monotonic()
    proc = subprocess.Popen(
        command_line,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[str, Any] = {"log": []}

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "partitions assigned" in line and "assigned" not in seen:
                seen["assigned"] = time.time()
            if line.startswith("PEAK_RSS_MB "):
                seen["rss"] = float(line.split()[1])
            if line.startswith("GC_S "):
                words = line.split()
                seen["gc_s"] = [float(w) for w in words[1:4]]
                seen["gc_runs"] = [int(w) for w in words[5:8]]
            seen["log"].append(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    tree = {"peak_kb": 0}

    def sample_tree() -> None:  # every process of the command, sampled: workers included
        while proc.poll() is None:
            tree["peak_kb"] = max(tree["peak_kb"], _tree_rss_kb(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample_tree, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    out = proc.stdout.read()  # not communicate(): the thread owns stderr
    proc.wait(timeout=900)
    reader.join(10)
    sampler.join(10)
    total = time.monotonic() - started
    # the last JSON line: under py-spy, its own messages share stdout
    summary = next(
        (json.loads(line) for line in reversed(out.splitlines()) if line.startswith("{")), None
    )
    if proc.returncode != 0 or summary is None:
        tail = "".join(seen["log"][-20:])
        raise RuntimeError(f"projectionist {command} exited {proc.returncode}:\n{tail}")
    if command == "consume":
        active = summary["last_applied_at"] - seen.get("assigned", summary["started_at"])
        events = summary["consumed"]
    else:
        active, events = summary["seconds"], summary["events"]
    return {
        "events": events,
        "active_s": active,
        "total_s": total,
        "peak_rss_mb": seen["rss"],
        # the sum over the command's processes (sampled every 50 ms): with --workers, the
        # parent's peak above is not the whole cost
        "tree_peak_rss_mb": round(tree["peak_kb"] / 1024, 1),
        "gc_s": seen.get("gc_s"),
        "gc_runs": seen.get("gc_runs"),
    }
