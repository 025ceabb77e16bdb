"""``python -m bench.cli_probe <projectionist args>``: the CLI, plus its peak RSS at exit.

Runs the console script's own ``main()`` in this process (the same code path as
``projectionist …``), and prints ``PEAK_RSS_MB <n>`` on stderr as the process exits:
a child's ``ru_maxrss`` would also count the benchmark's own memory (fork+exec keeps
the parent's high-water mark), VmHWM read in the process itself does not.
"""

from __future__ import annotations

import atexit
import gc
import sys
import time
from typing import Any

_gc = {"s": [0.0, 0.0, 0.0], "runs": [0, 0, 0], "t": 0.0}


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc["t"] = time.perf_counter()
    else:
        _gc["s"][info["generation"]] += time.perf_counter() - _gc["t"]
        _gc["runs"][info["generation"]] += 1


def _peak_rss() -> None:
    with open("/proc/self/status", encoding="ascii") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(f"PEAK_RSS_MB {hwm / 1024:.1f}", file=sys.stderr, flush=True)
    seconds = " ".join(f"{s:.3f}" for s in _gc["s"])
    runs = " ".join(str(n) for n in _gc["runs"])
    print(f"GC_S {seconds} RUNS {runs}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    atexit.register(_peak_rss)
    gc.callbacks.append(_gc_timer)
    from consumers.cli import main

    sys.argv = ["projectionist", *sys.argv[1:]]
    main()
