"""Consumer processes under test: start, SIGKILL, SIGTERM, SIGSTOP/SIGCONT, and their counters."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from typing import Any

from tests.support import json_line, start_cli

SERVICE = ["consume", "blog", "--json"]
DRAIN = ["consume", "blog", "--drain", "--json", "--timeout", "120"]


@dataclass
class Fleet:
    """Every consumer process of one scenario; counters of those that exited cleanly."""

    env: dict[str, str]
    running: list[subprocess.Popen[str]] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    kills: int = 0
    terms: int = 0
    starts: int = 0

    def start(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = start_cli(SERVICE, env={**self.env, **(extra_env or {})})
        self.running.append(proc)
        self.starts += 1
        return proc

    def kill(self, proc: subprocess.Popen[str]) -> None:
        """SIGKILL: no goodbye, no counters; its partitions move after the session timeout."""
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        self.running.remove(proc)
        self.kills += 1

    def term(self, proc: subprocess.Popen[str]) -> dict[str, Any] | None:
        """SIGTERM: the batch in hand commits, the member leaves, counters are printed.

        None when the signal beat the process's own start-up (no handler installed yet).
        """
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        self.running.remove(proc)
        self.terms += 1
        if proc.returncode == -signal.SIGTERM and '"consumer started"' not in err:
            return None
        assert proc.returncode == 0, f"consumer exited {proc.returncode}: {err[-3000:]}"
        stats = json_line(out)
        self.stats.append(stats)
        return stats

    def stop_all(self) -> None:
        for proc in list(self.running):
            if proc.poll() is None:
                self.term(proc)
            else:
                _out, err = proc.communicate()
                self.running.remove(proc)
                raise AssertionError(f"consumer died on its own ({proc.returncode}): {err[-3000:]}")

    def kill_all(self) -> None:
        """Cleanup after a failure: nothing may outlive the test."""
        for proc in list(self.running):
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        self.running.clear()
